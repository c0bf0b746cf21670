"""The SyncMNIST synchronous-pair investigation: why the quick Table 1 rows stay
sync-blind on 2 CPU cores (docs/sync_pair_on_cpu.md).

* ``python -m experiments.sync_pair.probe``: sync-blind probes of a frozen backbone
  (``feature_probe``), how far its features go without finding the pair;
* ``python -m experiments.sync_pair.oracle``: RSTG heads (or an MLP) given the true digits
  (``oracle_digits``), whether a schedule finds the pair once the digits are free;
* ``report.probe_summary``: the probes' line in ``python -m train.table``'s table.md.
"""
