"""keras_jepa.masks"""
