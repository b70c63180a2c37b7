"""Real pretrained models rebuilt in plain torch (no `transformers`): all-MiniLM-L6-v2 (`minilm`) and
SmolLM2-135M-Instruct (`smollm2`, optional package). Model facts live as data in `registry`.

Submodules load lazily; import `explorer.models.minilm` / `explorer.models.smollm2` for the loaders.
"""
