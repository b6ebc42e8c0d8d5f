"""V-JEPA 2-AC: the action-conditioned predictor over frozen V-JEPA 2 features, its
teacher-forcing and rollout training, latent-space planning (CEM, receding horizon, energy
landscapes), a procedural reaching world to run it on a CPU, and the released preset."""

from keras_jepa.models.ac.data import PointReachEnv, WallReachEnv, random_trajectories
from keras_jepa.models.ac.model import (
    ACPredictor,
    VJEPA2AC,
    ac_rope_tables,
    block_causal_mask,
)
from keras_jepa.models.ac.planning import (
    CEMPlanner,
    EnergyModel,
    FrameEncoder,
    action_grid,
    cem,
    droid_cem_settings,
    energy_landscape,
    greedy_action,
    plot_energy_landscape,
    receding_horizon,
    rollout_energy,
)
from keras_jepa.models.ac import presets  # noqa: F401  (registers the released checkpoint)
