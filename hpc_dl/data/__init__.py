"""Shipped data files (cluster profiles)."""
