"""keras_jepa.evaluation"""
