"""SenseOps trainer: recordings → filtered, normalised training data → fine-tuned, evaluated, exported and
packaged SenseVoice model. Stages and the CLI are described in :mod:`senseops_trainer.cli`."""
