"""XRM (environment discovery with twin networks), group-robust training (ERM, GroupDRO),
spurious-correlation data and worst-group metrics."""

from keras_jepa.models.xrm.group_robust import ERM, GroupDRO
from keras_jepa.models.xrm.model import XRM
