"""Training with Lightning: the language-model and task modules, callbacks, the Trainer and resume."""
