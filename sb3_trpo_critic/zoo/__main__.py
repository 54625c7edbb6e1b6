"""``python -m sb3_trpo_critic.zoo <script> ...``: rl-zoo3's scripts with TRPOCritic registered."""

from sb3_trpo_critic.zoo.cli import run

if __name__ == "__main__":
    run()
