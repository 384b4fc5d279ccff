"""Data: sources (download, checksum, parse), preprocessing, leave-one-out split, batching."""
