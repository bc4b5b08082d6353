"""Names of the corpora `load_msa_dataset` reads (no heavy imports)."""

SUPPORTED_DATASETS = ("synthetic", "mosi", "mosei", "sims", "ami", "custom")
