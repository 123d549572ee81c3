"""Procedure planning: transpedicular trajectories, margins, device sizing, simulated fluoroscopy."""
