"""A compact VistaLLM-style vision-language model, trained with ``model.fit``.

Image tower: a keras_jepa ``VisionTransformer``. The ``InstructionGuidedTokenizer``
compresses each image's patch tokens into ``num_queries`` tokens, guided by the embedded
instruction. A small causal decoder (keras_jepa ``TransformerBlock``\\ s with a causal
``attention_mask``) reads ``[image tokens; instruction; answer so far]`` and predicts the
next answer token. Answers are text: words for captions, coordinate bins for boxes and
``<m_st> x y ... <m_ed>`` polygon sequences for masks (``keras_jepa.models.vistallm.sequences``).

Training is teacher forcing: ``inputs = {"images", "instruction", "tokens"}`` with
``tokens`` = ``<bos>`` + the answer shifted right, targets = the answer + ``<eos>``,
padding 0 ignored by the loss (``keras.losses.SparseCategoricalCrossentropy(
from_logits=True, ignore_class=0)``). ``generate`` decodes greedily with static shapes
(one compiled forward per position, no cache).
"""

import keras
import numpy as np
from keras import ops

from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.transformer_block import TransformerBlock
from keras_jepa.models.vit.vision_transformer import VisionTransformer
from keras_jepa.models.vistallm import sequences as seq
from keras_jepa.models.vistallm.tokenizer import InstructionGuidedTokenizer


@keras.saving.register_keras_serializable(package="keras_jepa")
class VistaLLM(keras.Model):
    """Image tower + instruction-guided tokenizer + causal text decoder.

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        image_size, patch_size, num_channels: the image tower's input.
        hidden_dim: width of every part.
        encoder_depth, decoder_depth: blocks in the image tower and the decoder.
        num_heads: attention heads everywhere.
        num_queries: tokens per image from the tokenizer (``M``).
        tokenizer_depth: blocks of the tokenizer.
        tokenizer_init_std: std of the tokenizer's normal init (queries and kernels).
            ``None`` (default) uses ``hidden_dim ** -0.5``. At small widths the usual 0.02
            makes every query attend uniformly to all image tokens at the start (the
            attention logits are near 0), so no position information reaches the decoder
            and the model does not learn to localise; ``hidden_dim ** -0.5`` gives logits
            of order one. At width 768 it is 0.036, close to the usual value.
        num_images: images per example; ``1`` takes ``(B, H, W, C)``, more take
            ``(B, I, H, W, C)`` (each image tokenised on its own).
        instruction_length, target_length: token budget of instruction and answer.
        mlp_ratio: MLP ratio of all blocks.

    Example:

    >>> import numpy as np
    >>> model = VistaLLM(vocabulary_size=20, image_size=16, patch_size=8, hidden_dim=16,
    ...                  num_heads=2, num_queries=2, instruction_length=3, target_length=4)
    >>> batch = dict(images=np.zeros((2, 16, 16, 3), "float32"),
    ...              instruction=np.ones((2, 3), "int32"), tokens=np.ones((2, 4), "int32"))
    >>> tuple(model(batch).shape)
    (2, 4, 20)
    """

    def __init__(
        self,
        vocabulary_size,
        image_size=32,
        patch_size=4,
        num_channels=3,
        hidden_dim=64,
        encoder_depth=2,
        decoder_depth=2,
        num_heads=4,
        num_queries=8,
        tokenizer_depth=1,
        tokenizer_init_std=None,
        num_images=1,
        instruction_length=3,
        target_length=19,
        mlp_ratio=4.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.image_size = int(image_size)
        self.patch_size = int(patch_size)
        self.num_channels = int(num_channels)
        self.hidden_dim = int(hidden_dim)
        self.encoder_depth = int(encoder_depth)
        self.decoder_depth = int(decoder_depth)
        self.num_heads = int(num_heads)
        self.num_queries = int(num_queries)
        self.tokenizer_depth = int(tokenizer_depth)
        self.tokenizer_init_std = None if tokenizer_init_std is None else float(
            tokenizer_init_std)
        self.num_images = int(num_images)
        self.instruction_length = int(instruction_length)
        self.target_length = int(target_length)
        self.mlp_ratio = float(mlp_ratio)
        if self.num_images < 1:
            raise ValueError(f"num_images must be >= 1; got {num_images}.")
        common = dict(dtype=self.dtype_policy)
        self.image_encoder = VisionTransformer(
            image_size=self.image_size, patch_size=self.patch_size,
            num_channels=self.num_channels, hidden_dim=self.hidden_dim,
            depth=self.encoder_depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
            name="image_encoder", **common,
        )
        self.embedding = keras.layers.Embedding(
            self.vocabulary_size, self.hidden_dim, embeddings_initializer=normal_init(0.02),
            name="embedding", **common,
        )
        self.image_tokenizer = InstructionGuidedTokenizer(
            num_queries=self.num_queries, num_heads=self.num_heads,
            depth=self.tokenizer_depth, mlp_ratio=self.mlp_ratio,
            init_std=(self.hidden_dim ** -0.5 if self.tokenizer_init_std is None
                      else self.tokenizer_init_std),
            output_dim=self.hidden_dim, name="image_tokenizer", **common,
        )
        self.blocks = [
            TransformerBlock(self.num_heads, mlp_ratio=self.mlp_ratio, name=f"blocks_{i}",
                             **common)
            for i in range(self.decoder_depth)
        ]
        self.norm = keras.layers.LayerNormalization(epsilon=1e-6, name="norm", **common)
        self.head = keras.layers.Dense(
            self.vocabulary_size, kernel_initializer=normal_init(0.02), name="head", **common
        )
        self.sequence_length = (
            self.num_images * self.num_queries + self.instruction_length + self.target_length
        )
        self.position_embedding = self.add_weight(
            shape=(self.sequence_length, self.hidden_dim), initializer=normal_init(0.02),
            name="position_embedding",
        )
        causal = np.tril(np.ones((self.sequence_length,) * 2, bool))
        self._causal_mask = causal[None, None]
        self._build_all()

    def _build_all(self):
        d = self.hidden_dim
        image_shape = (None, self.image_size, self.image_size, self.num_channels)
        self.embedding.build((None, None))
        tokens = self.image_encoder.num_tokens(image_shape)
        vision_shape = (None, tokens, d) if self.num_images == 1 else (
            None, self.num_images, tokens, d)
        self.image_tokenizer.build(vision_shape, (None, self.instruction_length, d))
        for block in self.blocks:
            block.build((None, self.sequence_length, d))
        self.norm.build((None, self.sequence_length, d))
        self.head.build((None, self.target_length, d))
        self.built = True

    def call(self, inputs, training=False):
        images = inputs["images"]
        instruction = ops.cast(inputs["instruction"], "int32")
        tokens = ops.cast(inputs["tokens"], "int32")
        if self.num_images > 1:
            if len(images.shape) != 5:
                raise ValueError(
                    f"num_images={self.num_images} expects images (B, I, H, W, C); got "
                    f"shape {tuple(images.shape)}."
                )
            folded = ops.reshape(images, (-1,) + tuple(images.shape[2:]))
            vision = self.image_encoder(folded, training=training)
            vision = ops.reshape(vision, (-1, self.num_images) + tuple(vision.shape[1:]))
        else:
            vision = self.image_encoder(images, training=training)
        text = self.embedding(instruction)
        visual = self.image_tokenizer(vision, text, instruction_mask=instruction != 0)
        visual = ops.reshape(visual, (-1, self.num_images * self.num_queries, self.hidden_dim))
        x = ops.concatenate([visual, text, self.embedding(tokens)], axis=1)
        x = x + ops.cast(self.position_embedding, x.dtype)[None]
        mask = ops.convert_to_tensor(self._causal_mask)
        for block in self.blocks:
            x = block(x, attention_mask=mask, training=training)
        x = self.norm(x[:, -self.target_length :])
        return ops.cast(self.head(x), "float32")

    def generate(self, inputs, vocabulary=None, batch_size=256, max_length=None):
        """Greedy decoding; returns ``(B, target_length)`` int ids (0 after ``<eos>``).

        ``inputs`` needs ``images`` and ``instruction``. The buffer keeps its static
        length; each position reruns the compiled forward (``predict_on_batch``).
        """
        bos = 1 if vocabulary is None else vocabulary.bos_id
        eos = 2 if vocabulary is None else vocabulary.eos_id
        length = self.target_length if max_length is None else int(max_length)
        images = np.asarray(inputs["images"])
        instruction = np.asarray(inputs["instruction"], "int32")
        outputs = []
        for start in range(0, len(images), batch_size):
            img = images[start : start + batch_size]
            ins = instruction[start : start + batch_size]
            tokens = np.zeros((len(img), self.target_length), "int32")
            tokens[:, 0] = bos
            out = np.zeros_like(tokens)
            done = np.zeros(len(img), bool)
            for t in range(min(length, self.target_length)):
                logits = self.predict_on_batch(dict(images=img, instruction=ins,
                                                    tokens=tokens))
                step = np.argmax(np.asarray(logits)[:, t], axis=-1).astype("int32")
                step = np.where(done, 0, step)
                out[:, t] = step
                if t + 1 < self.target_length:
                    tokens[:, t + 1] = step
                done |= step == eos
                if done.all():
                    break
            outputs.append(out)
        return np.concatenate(outputs, axis=0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "num_channels": self.num_channels,
                "hidden_dim": self.hidden_dim,
                "encoder_depth": self.encoder_depth,
                "decoder_depth": self.decoder_depth,
                "num_heads": self.num_heads,
                "num_queries": self.num_queries,
                "tokenizer_depth": self.tokenizer_depth,
                "tokenizer_init_std": self.tokenizer_init_std,
                "num_images": self.num_images,
                "instruction_length": self.instruction_length,
                "target_length": self.target_length,
                "mlp_ratio": self.mlp_ratio,
            }
        )
        return config


def sequence_loss(vocabulary=None, bin_sigma=0.0):
    """Cross-entropy over answer tokens, padding (id 0) ignored.

    With ``bin_sigma > 0`` (and a ``vocabulary``) a coordinate target ``<bin_k>`` becomes
    a Gaussian over the neighbouring bins, ``q_j ~ exp(-(j - k)^2 / (2 sigma^2))``, so a
    near miss costs less than a far one (the bins are ordered, plain cross-entropy does
    not know it). Other tokens keep one-hot targets. The loss per example is the mean
    over its non-padding tokens.

    >>> import numpy as np
    >>> from keras_jepa.models.vistallm.sequences import Vocabulary
    >>> loss = sequence_loss(Vocabulary(num_bins=11), bin_sigma=1.0)
    >>> logits = np.zeros((1, 2, 17), "float32")
    >>> values = keras.ops.convert_to_numpy(loss(np.array([[8, 0]]), logits))
    >>> round(float(values[0]), 4)  # log(17): uniform logits
    2.8332
    """
    if bin_sigma <= 0:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    if vocabulary is None:
        raise ValueError("bin_sigma > 0 needs the vocabulary (to find the bin tokens).")
    first, num_bins, size = vocabulary.first_bin_id, vocabulary.num_bins, len(vocabulary)
    sigma = float(bin_sigma)

    def soft_bin_cross_entropy(y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logp = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        one_hot = ops.one_hot(y_true, size, dtype="float32")
        is_bin = ops.cast(y_true >= first, "float32")[..., None]
        centre = ops.cast(y_true - first, "float32")[..., None]
        grid = ops.arange(num_bins, dtype="float32")
        soft = ops.softmax(-ops.square(grid - centre) / (2.0 * sigma**2), axis=-1)
        soft = ops.concatenate(
            [ops.zeros(ops.shape(soft)[:-1] + (first,), "float32"), soft], axis=-1
        )
        target = is_bin * soft + (1.0 - is_bin) * one_hot
        token_loss = -ops.sum(target * logp, axis=-1)
        mask = ops.cast(y_true != 0, "float32")
        return ops.sum(token_loss * mask, axis=-1) / ops.maximum(ops.sum(mask, axis=-1), 1.0)

    return soft_bin_cross_entropy


def evaluate_tasks(generated, meta, vocabulary, image_shape):
    """Scores greedy outputs per task against the scene metadata.

    Returns a dict: ``mask_miou`` / ``mask_ciou`` (decoded polygon vs the referred mask),
    ``baseline_miou`` / ``baseline_ciou`` (the scene's largest object as the answer),
    ``box_miou`` and ``box_acc50`` (IoU >= 0.5), each over the examples of its task.
    """
    masks, truths, baseline, box_ious = [], [], [], []
    for ids, info in zip(generated, meta):
        tokens = vocabulary.decode(ids)
        if info["task"] == "mask":
            masks.append(seq.tokens_to_mask(tokens, image_shape, vocabulary.num_bins))
            truths.append(info["mask"])
            baseline.append(info["largest_mask"])
        elif info["task"] == "box":
            coords = seq.tokens_to_coordinates(tokens, image_shape, vocabulary.num_bins)
            box_ious.append(seq.box_iou(coords[:4], info["box"]) if len(coords) >= 4 else 0.0)
    out = {}
    if masks:
        out["mask_miou"] = float(np.mean([seq.mask_iou(p, t) for p, t in zip(masks, truths)]))
        out["mask_ciou"] = seq.cumulative_iou(masks, truths)
        out["baseline_miou"] = float(
            np.mean([seq.mask_iou(p, t) for p, t in zip(baseline, truths)])
        )
        out["baseline_ciou"] = seq.cumulative_iou(baseline, truths)
    if box_ious:
        out["box_miou"] = float(np.mean(box_ious))
        out["box_acc50"] = float(np.mean(np.asarray(box_ious) >= 0.5))
    return out
