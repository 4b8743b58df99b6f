"""Training STCNet: the run's settings (``config``), the data it reads (``datasets``), the objective beyond the
paper's eq. 10 (``objective``), processes under ``torchrun`` (``distributed``), the saved training state
(``state``) and what a run writes as it goes (``logbook``). The loop itself is :mod:`core_model.train`."""
