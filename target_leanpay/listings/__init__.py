"""What Leanpay holds, proved: full and delta listings, finds by id, the sift."""
