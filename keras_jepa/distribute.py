"""Public name of the multi-device setup: ``keras_jepa.distribute.setup("data")``.

The implementation imports the backends' own engines, so it lives in
``keras_jepa.backend.distribution``; see there for the documentation.
"""

from keras_jepa.backend.distribution import *  # noqa: F401,F403
