"""What the target remembers: a cache of Leanpay, promises, the lock (folder or PostgreSQL)."""
