"""Benchmarks: ``python -m sb3_trpo_critic.benchmarks.compare`` compares TRPOCritic with PPO and TRPO (modules
``results``, ``run``, ``sweep``, ``report``); ``python -m sb3_trpo_critic.benchmarks.update_cost`` times one ``train()``
of each; ``python -m sb3_trpo_critic.benchmarks.throughput`` times whole trainings."""
