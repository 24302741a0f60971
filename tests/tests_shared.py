"""Set-ups shared by the in-process tests and the multi-process worker."""

import jax


def small_run(el, mesh):
    """A tiny sharded ES run on CartPole and one evaluation of its final population."""
    task = el.tasks.make("CartPole-v1", max_steps=40)
    policy = el.policies.for_task(task, hidden=(8,))
    strategy = el.strategies.openai_es(8, sigma=0.1, learning_rate=0.05)
    trainer = el.make_train(task, policy, strategy, generations=3, eval_episodes=2, mesh=mesh)
    result = trainer(jax.random.PRNGKey(42))
    with el.train.mesh_context(trainer.mesh):
        evaluation = jax.jit(
            lambda k, s: el.evaluate(k, task, policy, strategy.ask(k, s)[0], episodes=2)
        )(jax.random.PRNGKey(7), result.state)
    return result, evaluation
