"""Leanpay's HTTP API: one session, retries, 429 in one place, its errors."""
