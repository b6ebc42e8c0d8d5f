"""Tokenizers for the text towers of image-text models; none needs a download.

* :class:`ByteTokenizer`: UTF-8 bytes, a fixed vocabulary of 259 ids; works for any text.
* :class:`WordTokenizer`: a word vocabulary built from the training captions
  (``WordTokenizer.from_texts``), stored in its config, so a saved model keeps it.
* :func:`keras_hub_tokenizer`: any keras-hub tokenizer preset (the ``hub`` extra,
  ``pip install keras_jepa[hub]``), wrapped to the same ``encode``/``decode`` interface.
  keras-hub is imported only when this is called; presets are downloaded by keras-hub, so
  this path needs network on first use. It is not exercised by the test suite.

All tokenizers map a list of strings to a ``(N, max_length)`` int32 numpy array: id 0 is
padding, every sequence starts with ``bos_id`` and ends with ``eos_id`` (truncated text
keeps its ``eos``), so a text tower can pool over the non-zero ids.
"""

import re

import keras
import numpy as np

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
_WORD_RE = re.compile(r"\w+|[^\w\s]")


def _as_list(texts):
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"Texts must be strings; got {text!r} ({type(text).__name__}).")
    return texts


def _pack(sequences, max_length, bos_id, eos_id):
    """Rows ``[bos, ids..., eos, 0, ...]`` of length ``max_length`` (ids truncated)."""
    out = np.zeros((len(sequences), max_length), "int32")
    body = max_length - 2
    for row, ids in enumerate(sequences):
        ids = list(ids)[:body]
        out[row, 0] = bos_id
        out[row, 1 : 1 + len(ids)] = ids
        out[row, 1 + len(ids)] = eos_id
    return out


def _check_length(max_length):
    if not isinstance(max_length, (int, np.integer)) or max_length < 3:
        raise ValueError(
            f"max_length must be an int >= 3 (bos, one token, eos); got {max_length!r}."
        )
    return int(max_length)


@keras.saving.register_keras_serializable(package="keras_jepa")
class ByteTokenizer:
    """UTF-8 byte tokenizer: id 0 pad, 1 bos, 2 eos, byte ``b`` -> ``b + 3``.

    Args:
        max_length: output length, bos and eos included; longer texts are truncated.

    Example:

    >>> tok = ByteTokenizer(max_length=8)
    >>> ids = tok.encode(["hi"])
    >>> ids.tolist(), tok.decode(ids)
    ([[1, 107, 108, 2, 0, 0, 0, 0]], ['hi'])
    """

    pad_id, bos_id, eos_id = 0, 1, 2
    vocabulary_size = 259

    def __init__(self, max_length=64):
        self.max_length = _check_length(max_length)

    def encode(self, texts):
        """``list[str]`` (or one str) -> ``(N, max_length)`` int32."""
        seqs = [np.frombuffer(t.encode("utf-8"), np.uint8).astype("int32") + 3
                for t in _as_list(texts)]
        return _pack(seqs, self.max_length, self.bos_id, self.eos_id)

    def decode(self, ids):
        """Inverse of ``encode`` for texts that were not truncated (drops special ids)."""
        ids = np.asarray(ids)
        ids = ids[None] if ids.ndim == 1 else ids
        return [bytes(int(i) - 3 for i in row if i >= 3).decode("utf-8", "replace")
                for row in ids]

    def __call__(self, texts):
        return self.encode(texts)

    def get_config(self):
        return {"max_length": self.max_length}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_jepa")
class WordTokenizer:
    """Lower-cased word/punctuation tokenizer with a vocabulary built from data.

    ``vocabulary`` lists the words; ids 0-3 are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``
    and the words follow. Build one with :meth:`from_texts`.

    Args:
        vocabulary: list of words (without the special tokens).
        max_length: output length, bos and eos included.

    Example:

    >>> tok = WordTokenizer.from_texts(["a red circle", "a blue square"], max_length=6)
    >>> ids = tok.encode(["a red square", "a green circle"])
    >>> tok.vocabulary_size, tok.decode(ids)
    (9, ['a red square', 'a <unk> circle'])
    """

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, vocabulary, max_length=32):
        self.max_length = _check_length(max_length)
        vocabulary = [str(w) for w in vocabulary]
        clash = {PAD, BOS, EOS, UNK} & set(vocabulary)
        if clash or len(set(vocabulary)) != len(vocabulary):
            raise ValueError(
                "vocabulary must hold distinct words and no special token; got duplicates "
                f"or {sorted(clash)}."
            )
        self.vocabulary = vocabulary
        self._index = {w: i + 4 for i, w in enumerate(vocabulary)}
        self._words = [PAD, BOS, EOS, UNK] + vocabulary

    @classmethod
    def from_texts(cls, texts, max_length=32, min_count=1, max_words=None):
        """Vocabulary of the words seen at least ``min_count`` times, most frequent first
        (ties alphabetical), at most ``max_words``."""
        counts = {}
        for text in _as_list(texts):
            for word in cls.split(text):
                counts[word] = counts.get(word, 0) + 1
        words = sorted((w for w, c in counts.items() if c >= min_count),
                       key=lambda w: (-counts[w], w))
        if max_words is not None:
            words = words[: int(max_words)]
        return cls(words, max_length=max_length)

    @staticmethod
    def split(text):
        """Lower-cased words and punctuation marks of ``text``."""
        return _WORD_RE.findall(text.lower())

    @property
    def vocabulary_size(self):
        return len(self._words)

    def encode(self, texts):
        """``list[str]`` (or one str) -> ``(N, max_length)`` int32; unknown words -> 3."""
        seqs = [[self._index.get(w, self.unk_id) for w in self.split(t)]
                for t in _as_list(texts)]
        return _pack(seqs, self.max_length, self.bos_id, self.eos_id)

    def decode(self, ids):
        """Words joined by spaces (special ids dropped, ``<unk>`` kept)."""
        ids = np.asarray(ids)
        ids = ids[None] if ids.ndim == 1 else ids
        return [" ".join(self._words[int(i)] for i in row if int(i) >= 3) for row in ids]

    def __call__(self, texts):
        return self.encode(texts)

    def get_config(self):
        return {"vocabulary": list(self.vocabulary), "max_length": self.max_length}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _KerasHubTokenizer:
    """A keras-hub tokenizer behind the ``encode``/``decode`` interface above."""

    def __init__(self, tokenizer, max_length):
        self.tokenizer = tokenizer
        self.max_length = _check_length(max_length)
        self.vocabulary_size = int(tokenizer.vocabulary_size())
        # Special ids: keras-hub names them per model; fall back to 1 and 2.
        self.bos_id = int(getattr(tokenizer, "start_token_id", None) or 1)
        self.eos_id = int(getattr(tokenizer, "end_token_id", None) or 2)

    def encode(self, texts):
        seqs = [np.asarray(keras.ops.convert_to_numpy(self.tokenizer(t))).reshape(-1)
                for t in _as_list(texts)]
        return _pack(seqs, self.max_length, self.bos_id, self.eos_id)

    def decode(self, ids):
        ids = np.asarray(ids)
        ids = ids[None] if ids.ndim == 1 else ids
        specials = {0, self.bos_id, self.eos_id}
        return [str(self.tokenizer.detokenize([int(i) for i in row if int(i) not in specials]))
                for row in ids]

    def __call__(self, texts):
        return self.encode(texts)


def keras_hub_tokenizer(preset, max_length=64):
    """A keras-hub tokenizer (e.g. ``"siglip_base_patch16_224"``) with this module's
    ``encode``/``decode`` interface. Needs the ``hub`` extra; untested in CI.

    Raises:
        ImportError: keras-hub is not installed (install ``keras_jepa[hub]``).
    """
    try:
        import keras_hub  # noqa: PLC0415 - optional dependency, imported on use
    except ImportError as error:
        raise ImportError(
            "keras_hub_tokenizer needs keras-hub: pip install 'keras_jepa[hub]' (it requires "
            "the full tensorflow package, not tensorflow-cpu)."
        ) from error
    return _KerasHubTokenizer(keras_hub.tokenizers.Tokenizer.from_preset(preset), max_length)
