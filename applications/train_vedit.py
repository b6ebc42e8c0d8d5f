"""Train VEDIT against its regressor baseline: ``keras-jepa train-vedit`` as a script
(same options; see ``keras_jepa.programs.train_vedit``).

    python applications/train_vedit.py --quick
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_jepa.programs import train_vedit
    from keras_jepa.programs.runner import script_main

    sys.exit(script_main(train_vedit))
