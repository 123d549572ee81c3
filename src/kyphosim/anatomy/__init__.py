"""Anatomy: synthetic spine phantoms with known truth (and, later, anatomical models)."""
