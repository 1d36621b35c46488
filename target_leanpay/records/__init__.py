"""From a record to a Leanpay item: the import surface as data, pure mapping."""
