"""
The throughput benchmark's peers from other libraries, each with its own library's recommended settings:
``tianshou_trpo`` (Tianshou's TRPO) and ``sbx_ppo`` (SBX's PPO, in JAX). They need the ``peers`` extra
(``pip install "sb3-trpo-critic[peers]"``: ``tianshou==2.0.1``, ``sbx-rl==0.28.0``, the versions these settings are
written for)::

    python -m sb3_trpo_critic.benchmarks.throughput --envs HalfCheetah-v5 Hopper-v5 \\
        --algos trpo_critic tianshou_trpo sbx_ppo --timesteps 20480 --rounds 3 --threads 1

``tianshou_trpo``: Tianshou 2.0.1's TRPO as its ``examples/mujoco/mujoco_trpo.py`` (tag ``v2.0.1``) sets it up,
every value from that example's defaults: 16 training envs, 1024 env steps per collect, all of them in one batch
(``batch_size=None``), one repetition per update; actor and critic 64x64 tanh MLPs, orthogonal initialization (gain
sqrt(2), zero biases), the action mean's layer scaled by 0.01, state-independent log std initialized to -0.5, a
diagonal Gaussian (``Independent(Normal)``), actions scaled to the bounds and clipped (``action_bound_method="clip"``);
observations normalized by running statistics (``VectorEnvNormObs``), returns scaled by their running std
(``return_scaling=True``, the example's ``rew_norm``), advantages normalized; ``max_kl=0.01``, line search
``backtrack_coeff=0.8`` up to ``max_backtracks=10``, gamma 0.99, GAE lambda 0.95, 20 critic Adam steps per update
(``optim_critic_iters``) at lr 1e-3 decaying linearly over the example's 100 epochs x 30000 env steps (3000
updates: 100 x ceil(30000 / 1024)); a ``VectorReplayBuffer`` of 4096 transitions, ``exploration_noise=True``.
Its training envs are built on each engine of the benchmark's ``--vec-env``:

- ``dummy`` (the row ``tianshou_trpo``): gymnasium's envs, as the other algorithms', stepped one after the other in
  this process (Tianshou's ``DummyVectorEnv``). A departure from the example, for a single-core measurement beside
  the others: the example uses its ``SubprocVectorEnv`` with shared memory when EnvPool is not installed, and
  EnvPool when it is.
- ``envpool`` (the row ``tianshou_trpo on envpool``): EnvPool's C++ envs and thread pool, as the example runs when
  EnvPool is installed: the example's path, ``EnvFactoryRegistered(..., envpool_factory=EnvPoolFactory())``, whose
  ``create_venv`` calls ``envpool.make_gymnasium(task, num_envs=16, seed=...)`` (the seed drawn from ``seed`` by
  Tianshou's factory), under the same ``VectorEnvNormObs``. One departure, for the measurement: the pool gets
  ``num_threads=threads`` (the benchmark's ``--threads``), through a subclass of ``EnvPoolFactory`` whose
  ``create_venv`` is Tianshou's plus that one argument (:func:`tianshou_envpool_factory`; not through the
  factory's keyword arguments, which would also reach the ``gymnasium.make`` of its ``create_env``). The example
  passes none, so its pool would have EnvPool's default ``num_threads=0``, which EnvPool takes as
  ``min(num_envs, the machine's cores)`` worker threads (2 on a 2-core machine); the benchmark gives every EnvPool
  pool ``--threads`` threads, ours too (:func:`~sb3_trpo_critic.benchmarks.run.build_env` adds ``num_threads`` to
  the zoo entry's ``env_kwargs``, which this package's adapter, :func:`~sb3_trpo_critic.envpool.make_envpool_vec_env`,
  passes to EnvPool), so that the rows on EnvPool step their envs on as many threads as torch (and JAX) computes
  with. Tianshou's collector takes EnvPool's batched info through its own conversion
  (``_HACKY_create_info_batch``, which warns once per process "You are using tensors with different shape");
  that is its path on EnvPool, timed as it is.

On both, a departure for the measurement: no test envs, logger or progress bar (no algorithm is evaluated or
logged while timed).

``sbx_ppo``: SBX's PPO with rl-zoo3's PPO entry for the env (``hyperparams/ppo.yml``, chosen as for ``ppo`` by
:func:`~sb3_trpo_critic.zoo.select_entry`: HalfCheetah-v5 and Hopper-v5 take the ``-v4`` entries), on the env stack
rl-zoo3 builds for that entry (:func:`~sb3_trpo_critic.zoo.envs.make_zoo_vec_env`: ``n_envs``, ``VecNormalize``,
...), so that it differs from ``ppo`` only by the library; on each engine of ``--vec-env`` as ``ppo`` is (SBX takes
SB3's ``VecEnv``: on ``envpool``, the row ``sbx_ppo on envpool``, the entry's copies are this package's EnvPool
adapter under the same wrappers, exactly ``ppo on envpool``'s stack, ``num_threads=threads`` in the entry's
``env_kwargs`` as ``ppo on envpool``'s, :func:`~sb3_trpo_critic.benchmarks.run.with_envpool_threads`). What SBX
does not take is translated (:func:`sbx_ppo_arguments`): ``policy_kwargs`` ``activation_fn`` from torch's class to
flax's function (``nn.ReLU`` -> ``flax.linen.relu``); ``ortho_init`` is passed as it is (SBX takes it; the MuJoCo entries set
``False``, as SBX's default); a key SBX does not take, or ``target_kl`` (an adaptive learning rate in SBX, early
stopping in SB3), is refused. JAX runs on the CPU with ``NPROC=threads`` (the size of XLA's CPU thread pools),
and, for one thread, ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``; both are set
before JAX is imported (in the benchmark's fresh process per training).

Both are warmed up and timed as the other algorithms (:mod:`sb3_trpo_critic.benchmarks.timing`): one rollout and
one update untimed, then the requested env steps timed. For ``sbx_ppo`` the phases are SB3's (``collect_rollouts``,
``train()``); for ``tianshou_trpo`` they are its collector's ``collect`` and its algorithm's ``update`` (which
also computes the returns and advantages, done in SB3 at the end of ``collect_rollouts``), timed by the benchmark:
Tianshou 2.0.1's own ``TimingStats.train_time_collect`` stays 0 with a ``Collector`` (only its ``AsyncCollector``
adds up ``collect_time``). The rest of the trainer's run is "other".
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sb3_trpo_critic.benchmarks.timing import Phases, add_time, time_learn
from sb3_trpo_critic.envpool import ENVPOOL_EXTRA, check_vec_env
from sb3_trpo_critic.extras import check_extra

#: The peers, by the name ``--algos`` takes, with the modules of the ``peers`` extra each needs.
PEER_MODULES: dict[str, tuple[str, ...]] = {
    "tianshou_trpo": ("tianshou",),
    "sbx_ppo": ("sbx", "jax", "flax"),
}

#: The engines (:data:`~sb3_trpo_critic.envpool.VEC_ENVS`) each peer is measured on, when ``--vec-env`` names them.
PEER_VEC_ENVS: dict[str, tuple[str, ...]] = {
    "tianshou_trpo": ("dummy", "envpool"),
    "sbx_ppo": ("dummy", "envpool"),
}

#: ``tianshou_trpo``'s number of training envs (the example's ``num_training_envs: int = 16``), on every engine.
TIANSHOU_NUM_TRAINING_ENVS = 16

#: Where ``tianshou_trpo``'s settings come from.
TIANSHOU_EXAMPLE = "Tianshou v2.0.1, examples/mujoco/mujoco_trpo.py"


def check_peer(algo: str) -> None:
    """
    :param algo: A peer (a key of :data:`PEER_MODULES`)
    :raises MissingExtraError: naming the ``peers`` extra, if a module it needs is not installed
    """
    check_extra("peers", PEER_MODULES[algo], needed_by=f"--algos {algo}")


# --- tianshou_trpo ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TianshouTrainerSettings:
    """The trainer settings of :data:`TIANSHOU_EXAMPLE` that the measurement uses (each from its ``main``'s defaults)."""

    #: ``collection_step_num_env_steps: int = 1024``: env steps per collect (64 per env)
    collection_step_num_env_steps: int = 1024
    #: ``batch_size: int | None = None``: one batch of the whole collect
    batch_size: int | None = None
    #: ``update_step_num_repetitions: int = 1``
    update_step_num_repetitions: int = 1


TIANSHOU_TRAINER = TianshouTrainerSettings()


@dataclass
class TianshouTraining:
    """A Tianshou TRPO ready to train (:func:`tianshou_trpo_training`)."""

    #: the ``TRPO`` algorithm
    algorithm: Any
    #: its training collector, on the training envs
    collector: Any
    #: the training envs: ``VectorEnvNormObs`` over a ``DummyVectorEnv`` of gymnasium's envs, or over EnvPool's pool
    envs: Any

    def trainer_params(self, env_steps: int) -> Any:
        """
        :param env_steps: Env steps of one epoch (the whole run)
        :return: The example's on-policy trainer parameters for one epoch of ``env_steps``, without test steps,
            logger or progress bar
        """
        from tianshou.trainer import OnPolicyTrainerParams

        return OnPolicyTrainerParams(
            training_collector=self.collector,
            test_collector=None,  # no evaluation while timed (the example: 10 test envs, 10 episodes per epoch)
            max_epochs=1,
            epoch_num_steps=env_steps,
            update_step_num_repetitions=TIANSHOU_TRAINER.update_step_num_repetitions,
            batch_size=TIANSHOU_TRAINER.batch_size,
            collection_step_num_env_steps=TIANSHOU_TRAINER.collection_step_num_env_steps,
            test_in_training=False,  # as the example
            logger=None,  # the example logs to TensorBoard; nothing is logged here
            verbose=False,
            show_progress=False,
        )


def tianshou_envpool_factory(num_threads: int | None = None) -> Any:
    """
    The ``envpool_factory`` of ``tianshou_trpo``'s env factory on ``envpool``.

    :param num_threads: EnvPool's worker threads of the pools it builds; ``None``: Tianshou's ``EnvPoolFactory()``
        itself, as :data:`TIANSHOU_EXAMPLE` passes it (no ``num_threads``: EnvPool's default, 0, which is
        ``min(num_envs, cores)`` threads)
    :return: ``EnvPoolFactory()``, or with ``num_threads`` a subclass of it whose ``create_venv`` is Tianshou
        2.0.1's (``envpool.make_gymnasium(task, num_envs=..., seed=..., **kwargs)``, the task and the keyword
        arguments transformed as Tianshou's are) plus ``num_threads=num_threads``
    :raises ValueError: for ``num_threads`` < 1
    """
    from tianshou.highlevel.env import EnvMode, EnvPoolFactory

    from sb3_trpo_critic.benchmarks.run import check_envpool_threads

    if num_threads is None:
        return EnvPoolFactory()
    threads = check_envpool_threads(num_threads)

    class ThreadedEnvPoolFactory(EnvPoolFactory):
        """Tianshou's ``EnvPoolFactory``, its pools with ``num_threads`` worker threads."""

        num_threads = threads

        def create_venv(self, task: str, num_envs: int, mode: EnvMode, seed: int, kwargs: dict) -> Any:
            import envpool

            return envpool.make_gymnasium(  # as EnvPoolFactory.create_venv, plus num_threads
                self._transform_task(task),
                num_envs=num_envs,
                seed=seed,
                num_threads=self.num_threads,
                **self._transform_kwargs(kwargs, mode),
            )

    return ThreadedEnvPoolFactory()


def tianshou_env_factory(env_id: str, vec_env: str = "dummy", envpool_threads: int | None = None) -> Any:
    """
    The env factory of ``tianshou_trpo``'s training envs: :data:`TIANSHOU_EXAMPLE`'s ``MujocoEnvFactory`` is
    ``EnvFactoryRegistered`` (plus ``VectorEnvNormObs``, added by :func:`tianshou_trpo_training`) with
    ``envpool_factory=EnvPoolFactory()`` when EnvPool is installed, else ``None`` and
    ``VectorEnvType.SUBPROC_SHARED_MEM_AUTO``.

    :param env_id: The gymnasium id (EnvPool's id of the same env on ``envpool``)
    :param vec_env: ``dummy``: gymnasium's envs in a ``DummyVectorEnv`` (``envpool_factory=None``, one core);
        ``envpool``: the example's EnvPool path, which builds the training envs with
        ``envpool.make_gymnasium(env_id, num_envs=..., seed=...)``, with ``num_threads`` when ``envpool_threads``
        is given (:func:`tianshou_envpool_factory`)
    :param envpool_threads: On ``envpool``, EnvPool's ``num_threads`` (:func:`tianshou_trpo_training` passes its
        ``threads``); ``None``: the example's ``EnvPoolFactory()``, EnvPool's default. Not used on ``dummy``
    :return: The factory
    :raises MissingExtraError: on ``envpool``, without EnvPool
    :raises ValueError: for an engine not in :data:`~sb3_trpo_critic.envpool.VEC_ENVS`
    """
    from tianshou.highlevel.env import EnvFactoryRegistered, VectorEnvType

    if check_vec_env(vec_env) == "envpool":
        check_extra(ENVPOOL_EXTRA, (ENVPOOL_EXTRA,), needed_by="tianshou_trpo on envpool")
        # venv_type is not used for the venvs when envpool_factory is given; the one gymnasium env the factory's
        # create_env makes (for the spaces, as the example's) is gymnasium.make's on either engine.
        envpool_factory = tianshou_envpool_factory(envpool_threads)
        return EnvFactoryRegistered(task=env_id, venv_type=VectorEnvType.DUMMY, envpool_factory=envpool_factory)
    # instead of the example's VectorEnvType.SUBPROC_SHARED_MEM_AUTO: stepped in this process (one core)
    return EnvFactoryRegistered(task=env_id, venv_type=VectorEnvType.DUMMY, envpool_factory=None)


def tianshou_trpo_training(env_id: str, seed: int, threads: int, vec_env: str = "dummy") -> TianshouTraining:
    """
    Tianshou's TRPO on ``env_id`` as :data:`TIANSHOU_EXAMPLE` builds it (the module docstring lists the settings),
    its training envs gymnasium's stepped in this process (``DummyVectorEnv``) or EnvPool's
    (:func:`tianshou_env_factory`), with ``threads`` worker threads.

    :param env_id: A gymnasium environment with a ``Box`` action space
    :param seed: Seed of numpy, torch and the envs (as the example's ``seed``)
    :param threads: Torch threads, and EnvPool's ``num_threads`` on ``envpool``
    :param vec_env: The engine of the training envs: ``dummy`` or ``envpool``
    :return: The algorithm, its training collector and envs
    :raises ValueError: for an environment whose actions are not a ``Box`` (the example is for MuJoCo), or an
        unknown engine
    :raises MissingExtraError: on ``envpool``, without EnvPool
    """
    import gymnasium as gym
    import numpy as np
    import torch
    from tianshou.algorithm import TRPO
    from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory, LRSchedulerFactoryLinear
    from tianshou.data import Collector, CollectStats, VectorReplayBuffer
    from tianshou.env import VectorEnvNormObs
    from tianshou.highlevel.env import EnvMode
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic
    from torch import nn
    from torch.distributions import Distribution, Independent, Normal

    torch.set_num_threads(threads)
    # the example's make_mujoco_env(task, seed, num_training_envs=16, num_test_envs, obs_norm=True): its
    # MujocoEnvFactory is EnvFactoryRegistered plus VectorEnvNormObs; here on the engine vec_env
    # (tianshou_env_factory: DummyVectorEnv, or the example's EnvPool path with threads EnvPool threads), and its
    # training envs only.
    factory = tianshou_env_factory(env_id, vec_env, envpool_threads=threads)
    env = factory.create_env(EnvMode.TRAINING)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"tianshou_trpo: {env_id} has {env.action_space} actions; {TIANSHOU_EXAMPLE} is for Box actions")
    envs = VectorEnvNormObs(  # example: obs_norm=True, update_obs_rms=mode == EnvMode.TRAINING
        factory.create_venv(TIANSHOU_NUM_TRAINING_ENVS, EnvMode.TRAINING, seed=seed), update_obs_rms=True
    )
    state_shape = env.observation_space.shape or ()
    action_shape = env.action_space.shape
    np.random.seed(seed)  # example: np.random.seed(seed); torch.manual_seed(seed)
    torch.manual_seed(seed)
    hidden_sizes = [64, 64]  # example: hidden_sizes = [64, 64]
    net_a = Net(state_shape=state_shape, hidden_sizes=hidden_sizes, activation=nn.Tanh)  # example: activation=nn.Tanh
    actor = ContinuousActorProbabilistic(preprocess_net=net_a, action_shape=action_shape, unbounded=True)  # example
    net_c = Net(state_shape=state_shape, hidden_sizes=hidden_sizes, activation=nn.Tanh)
    critic = ContinuousCritic(preprocess_net=net_c)
    torch.nn.init.constant_(actor.sigma_param, -0.5)  # example: torch.nn.init.constant_(actor.sigma_param, -0.5)
    for m in list(actor.modules()) + list(critic.modules()):
        if isinstance(m, torch.nn.Linear):  # example: orthogonal initialization, gain sqrt(2), zero biases
            torch.nn.init.orthogonal_(m.weight, gain=np.sqrt(2))
            torch.nn.init.zeros_(m.bias)
    for m in actor.mu.modules():
        if isinstance(m, torch.nn.Linear):  # example: last policy layer scaling (weights x 0.01, zero biases)
            torch.nn.init.zeros_(m.bias)
            m.weight.data.copy_(0.01 * m.weight.data)
    optim = AdamOptimizerFactory(lr=1e-3)  # example: lr: float = 1e-3
    optim.with_lr_scheduler_factory(  # example: lr_decay: bool = True, over epoch 100 x epoch_num_steps 30000
        LRSchedulerFactoryLinear(
            max_epochs=100,  # example: epoch: int = 100
            epoch_num_steps=30000,  # example: epoch_num_steps: int = 30000
            collection_step_num_env_steps=TIANSHOU_TRAINER.collection_step_num_env_steps,
        )
    )

    def dist(loc_scale: tuple[torch.Tensor, torch.Tensor]) -> Distribution:  # example: Independent(Normal, 1)
        loc, scale = loc_scale
        return Independent(Normal(loc, scale), 1)

    with warnings.catch_warnings():  # the example's warning that unbounded=True makes max_action 1.0, as intended
        warnings.filterwarnings("ignore", message="action_scaling and action_bound_method are only intended")
        policy = ProbabilisticActorPolicy(
            actor=actor,
            dist_fn=dist,
            action_scaling=True,  # example: action_scaling=True
            action_bound_method="clip",  # example: action_bound_method = "clip"
            action_space=env.action_space,
        )
    algorithm = TRPO(
        policy=policy,
        critic=critic,
        optim=optim,
        gamma=0.99,  # example: gamma: float = 0.99
        gae_lambda=0.95,  # example: gae_lambda: float = 0.95
        return_scaling=True,  # example: return_scaling: bool = True (rew_norm)
        advantage_normalization=True,  # example: advantage_normalization: bool = True
        optim_critic_iters=20,  # example: optim_critic_iters: int = 20
        max_kl=0.01,  # example: max_kl: float = 0.01
        backtrack_coeff=0.8,  # example: backtrack_coeff: float = 0.8
        max_backtracks=10,  # example: max_backtracks: int = 10
    )
    buffer = VectorReplayBuffer(4096, len(envs))  # example: buffer_size: int = 4096, a VectorReplayBuffer for 16 envs
    collector = Collector[CollectStats](algorithm, envs, buffer, exploration_noise=True)  # example
    env.close()
    return TianshouTraining(algorithm, collector, envs)


def measure_tianshou_trpo(env_id: str, timesteps: int, seed: int, threads: int, vec_env: str = "dummy") -> Phases:
    """
    Warm up (one trainer run of one collect and one update, untimed), then time a trainer run of ``timesteps`` env
    steps (one epoch, no test steps), with its collector's ``collect`` (rollout) and its algorithm's ``update``
    (train) timed. (Tianshou 2.0.1's own ``TimingStats.train_time_collect`` stays 0 with a ``Collector``, whose
    ``collect`` does not add to ``collect_time``; its ``train_time_update`` is ``update``'s time, as here.)

    :param env_id: The environment
    :param timesteps: Env steps of the timed run (whole collects of 1024)
    :param seed: Seed
    :param threads: Torch threads, and EnvPool's on ``envpool``
    :param vec_env: The engine of the training envs (:func:`tianshou_trpo_training`)
    :return: Its phases
    """
    training = tianshou_trpo_training(env_id, seed, threads, vec_env)
    warmup = training.algorithm.run_training(training.trainer_params(TIANSHOU_TRAINER.collection_step_num_env_steps))
    params = training.trainer_params(timesteps)
    clock = {"rollout": 0.0, "train": 0.0}
    training.collector.collect = add_time(clock, "rollout", training.collector.collect)
    training.algorithm.update = add_time(clock, "train", training.algorithm.update)
    start = time.perf_counter()
    info = training.algorithm.run_training(params)  # a fresh trainer: its env step count starts at 0
    seconds = time.perf_counter() - start
    training.envs.close()
    return Phases(int(info.train_step), seconds, clock["rollout"], clock["train"], int(warmup.train_step))


# --- sbx_ppo ------------------------------------------------------------------------------------------------------


#: torch's activation classes, by name, and the flax.linen functions SBX takes for them.
FLAX_ACTIVATIONS = {
    "Tanh": "tanh",
    "ReLU": "relu",
    "ELU": "elu",
    "GELU": "gelu",
    "LeakyReLU": "leaky_relu",
    "SiLU": "silu",
    "Sigmoid": "sigmoid",
}


def jax_threads(threads: int) -> None:
    """
    Set JAX to the CPU with ``threads`` threads, before it is imported: ``JAX_PLATFORMS=cpu``, ``NPROC=threads`` (the
    size of XLA's CPU thread pools), and for one thread
    ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``.

    :param threads: Threads
    """
    if "jax" in sys.modules:
        warnings.warn("jax is imported already: its threads are what they were", stacklevel=2)
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["NPROC"] = str(threads)
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()


def sbx_ppo_arguments(model_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """
    SB3 PPO's constructor arguments (a zoo entry's ``model_kwargs``) as SBX's PPO takes them.

    Translated: ``policy_kwargs["activation_fn"]``, a torch class (``nn.ReLU``), to the flax.linen function of
    :data:`FLAX_ACTIVATIONS` (``flax.linen.relu``). Passed as they are: every other argument SBX's ``PPO`` and
    ``PPOPolicy`` take (``ortho_init`` included: SBX's ``False`` default is the MuJoCo entries' value; with ``True``
    SBX initializes the action layer only).

    :param model_kwargs: Keyword arguments of SB3's PPO, without ``policy`` and ``env``
    :return: Keyword arguments of SBX's PPO
    :raises ValueError: for ``target_kl`` (SB3 stops the epochs early, SBX adapts the learning rate), an unknown
        activation, or an argument SBX's PPO or its policy does not take
    """
    from sbx import PPO
    from sbx.ppo.policies import PPOPolicy

    arguments = dict(model_kwargs)
    if "target_kl" in arguments:
        raise ValueError("sbx_ppo: target_kl is an adaptive learning rate in SBX, early stopping in SB3: not translated")
    unknown = sorted(set(arguments) - set(inspect.signature(PPO.__init__).parameters))
    policy_kwargs = dict(arguments.get("policy_kwargs") or {})
    policy_parameters = inspect.signature(PPOPolicy.__init__).parameters
    unknown += sorted(f"policy_kwargs.{key}" for key in set(policy_kwargs) - set(policy_parameters))
    if unknown:
        raise ValueError(f"sbx_ppo: SBX's PPO does not take {', '.join(unknown)}")
    if "activation_fn" in policy_kwargs:
        torch_class = policy_kwargs["activation_fn"]
        name = FLAX_ACTIVATIONS.get(getattr(torch_class, "__name__", ""))
        if name is None:
            raise ValueError(f"sbx_ppo: no flax activation for {torch_class!r} (known: {', '.join(FLAX_ACTIVATIONS)})")
        policy_kwargs["activation_fn"] = getattr(importlib.import_module("flax.linen"), name)
    if policy_kwargs:
        arguments["policy_kwargs"] = policy_kwargs
    return arguments


def sbx_ppo_model(
    env_id: str, seed: int, threads: int, overrides: Sequence[tuple[str, Any]] = (), vec_env: str = "dummy"
) -> Any:
    """
    SBX's PPO with rl-zoo3's PPO entry for ``env_id``, on the env stack rl-zoo3 builds for that entry, on the
    engine ``vec_env``: the entry and the env are built by :func:`~sb3_trpo_critic.benchmarks.run.build_env`, as
    the benchmark builds ``ppo``'s (on ``envpool`` with ``num_threads=threads`` added to the entry's
    ``env_kwargs``, :func:`~sb3_trpo_critic.benchmarks.run.with_envpool_threads`).

    :param env_id: The environment
    :param seed: Seed of the model and of the envs
    :param threads: JAX's and torch's threads (:func:`jax_threads`, set before JAX is first imported), and EnvPool's
        ``num_threads`` on ``envpool``
    :param overrides: (key, value) pairs replacing keys of the entry, as ``ppo``'s (``--variant sbx_ppo n_epochs:5``)
    :param vec_env: The engine of the entry's copies: ``dummy`` (gymnasium) or ``envpool``
    :return: The model, on its env
    :raises ValueError: on ``envpool``, if the entry (or ``overrides``) sets ``num_threads`` in its ``env_kwargs``
    """
    jax_threads(threads)
    from sbx import PPO

    from sb3_trpo_critic.benchmarks.results import RunSpec
    from sb3_trpo_critic.benchmarks.run import build_env

    spec = RunSpec("ppo", env_id, seed, threads=threads, hyperparams=tuple(overrides), vec_env=vec_env)
    zoo, env = build_env(spec, envpool_threads=threads)  # also sets torch's threads
    return PPO(zoo.policy, env, seed=seed, verbose=0, **sbx_ppo_arguments(zoo.model_kwargs))


def measure_sbx_ppo(
    env_id: str, timesteps: int, seed: int, threads: int, overrides: Sequence[tuple[str, Any]] = (), vec_env: str = "dummy"
) -> Phases:
    """
    :param env_id: The environment
    :param timesteps: Env steps of the timed part
    :param seed: Seed
    :param threads: Threads: JAX's, torch's and EnvPool's (:func:`sbx_ppo_model`)
    :param overrides: Changes to the zoo entry
    :param vec_env: The engine of the entry's copies
    :return: The phases of ``learn`` after a warm-up (:func:`~sb3_trpo_critic.benchmarks.timing.time_learn`)
    """
    model = sbx_ppo_model(env_id, seed, threads, overrides, vec_env)
    phases = time_learn(model, timesteps)
    model.get_env().close()
    return phases


def measure_peer(
    algo: str,
    env_id: str,
    timesteps: int,
    seed: int,
    threads: int,
    overrides: Sequence[tuple[str, Any]] = (),
    vec_env: str = "dummy",
) -> Phases:
    """
    :param algo: A peer (a key of :data:`PEER_MODULES`)
    :param env_id: The environment
    :param timesteps: Env steps of the timed part
    :param seed: Seed
    :param threads: Threads: torch's, JAX's (``sbx_ppo``) and, on ``envpool``, EnvPool's ``num_threads``
    :param overrides: Changes to ``sbx_ppo``'s zoo entry (``tianshou_trpo`` takes none)
    :param vec_env: The engine of its training envs, one of :data:`PEER_VEC_ENVS`'s for it
    :return: The timed part's phases
    :raises ValueError: for an unknown peer, changes to ``tianshou_trpo``, or an engine the peer is not measured on
    """
    if algo not in PEER_MODULES:
        raise ValueError(f"unknown peer {algo!r} (known: {', '.join(PEER_MODULES)})")
    if vec_env not in PEER_VEC_ENVS[algo]:
        raise ValueError(f"{algo} is not measured on vec_env {vec_env!r} (only on {', '.join(PEER_VEC_ENVS[algo])})")
    if algo == "tianshou_trpo":
        if overrides:
            raise ValueError(f"tianshou_trpo takes no KEY:VALUE changes (its settings are {TIANSHOU_EXAMPLE}'s)")
        return measure_tianshou_trpo(env_id, timesteps, seed, threads, vec_env)
    return measure_sbx_ppo(env_id, timesteps, seed, threads, overrides, vec_env)
