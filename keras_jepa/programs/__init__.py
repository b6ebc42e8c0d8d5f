"""The command-line programs behind ``keras-jepa <subcommand>`` (see ``keras_jepa.cli``)."""
