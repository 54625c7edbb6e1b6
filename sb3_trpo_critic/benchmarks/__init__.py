"""Benchmarks: ``python -m sb3_trpo_critic.benchmarks.compare`` compares TRPOCritic with PPO and TRPO."""
