"""keras_jepa.data"""
