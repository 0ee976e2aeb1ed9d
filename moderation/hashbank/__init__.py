"""Hash signals: PDQ hashing (``hashing``), the Hamming index (``index``) and the banks of
known content matched before scoring (``banks``)."""
