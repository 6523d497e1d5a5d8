"""Science benchmarks on the ``small`` simulated universe (held-out test split).

Each module runs as ``python -m benchmarks.science.<name>`` and records its figures with
``benchmarks.results.record`` (ids in the project's targets table), with its command, seeds and
wall time:

- ``galaxies``: S1 (image-embedding kNN redshift and its baselines), S2 (spectrum-embedding kNN
  redshift), S4 (image -> spectrum retrieval among 1,000 test candidates);
- ``stars``: S3 (AstroM³ protocol: CLIP-pretrained vs from-scratch light-curve classifiers at label
  fractions 1/10/25/100%, and all three modalities against the best single one);
- ``anomalies``: S5 (anomaly detection on the learned embeddings, without labels and after 100 oracle
  labels of active learning).

Context for the missed targets:

- ``information_limit``: how much redshift the images (S1) and the spectra (S2) hold, which bounds both;
- ``anomaly_visibility``: supervised detectors trained on an anomaly-rich universe (pixels and
  embeddings), which show how many of S5's galaxy anomalies can be found at all;
- ``ceiling``: the S1 (or S2) encoder trained supervised on every train redshift label.
"""
