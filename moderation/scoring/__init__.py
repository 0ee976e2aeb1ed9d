"""Image → per-category scores: the violation catalog (``catalog``), the scoring math
(``base``: scorer protocol, similarities, fusion) and the scorers over the backends
(``scorers``). Importing this package imports nothing heavy."""
