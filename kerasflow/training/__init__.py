"""What ``python -m kerasflow.fit`` runs: the staged training (``trainer``), the run folder it keeps
(``run_folder``), its Keras callbacks (``callbacks``), PyTorch-semantics optimizers (``optimizers``)
and the seeds, precision and tf.distribute strategy of a recipe's ``runtime`` section (``runtime_setup``)."""
