"""A one-compartment pharmacokinetic model fitted to concentrations AND to the time the
concentration fell below a threshold, with right-censoring.

Oral dose D into the gut: gut' = -ka·gut, central' = ka·gut - ke·central,
concentration C = central / V. Each subject has concentrations measured at a few times
(log-normal error) and the time at which C fell below `threshold` (an event-time
observation with Gaussian error). Subjects whose concentration was still above the
threshold at the end of follow-up are right-censored: their likelihood is the
probability that the event happens later. Censoring makes the likelihood non-Gaussian,
so `fit` uses BFGS.

    python examples/pk_censored_fit.py [--subjects 4] [--follow-up 15] [--seed 0]
"""

import argparse

import jax.numpy as jnp
import numpy as np

import odeinfer as oi

TRUE = {"ka": 1.2, "ke": 0.15, "V": 20.0}
THRESHOLD = 1.0


def vector_field(t, y, p):
    gut, central = y[0], y[1]
    return jnp.stack([-p["ka"] * gut, p["ka"] * gut - p["ke"] * central])


def concentration(t, y, p):
    return y[1] / p["V"]


MODEL = oi.ODEModel(vector_field, name="pk_oral_1cpt")
BELOW = oi.Crossing(concentration, THRESHOLD, direction="falling", name="C<threshold")


def simulate_subjects(n_subjects, follow_up, seed, times):
    rng = np.random.default_rng(seed)
    doses = np.linspace(100.0, 400.0, n_subjects)
    subjects = []
    for dose in doses:
        y0 = jnp.array([dose, 0.0])
        sol = oi.solve(MODEL, y0, TRUE, t0=0.0, t1=float(times[-1]), saveat=times)
        conc = np.asarray(sol.ys[:, 1]) / TRUE["V"]
        conc = conc * np.exp(0.1 * rng.standard_normal(conc.shape))
        hit = oi.first_crossing(MODEL, y0, TRUE, BELOW, t0=0.0, t1=200.0)
        event = float(hit.time) + 0.25 * rng.standard_normal()
        subjects.append((dose, conc, event if event <= follow_up else None))
    return subjects


def make_problem(subjects, times, follow_up):
    experiments = []
    for i, (dose, conc, event) in enumerate(subjects):
        if event is None:
            observation = oi.EventTimeObservation(
                BELOW, noise=oi.Gaussian(0.25), censoring="right", end_time=follow_up
            )
        else:
            observation = oi.EventTimeObservation(BELOW, event, oi.Gaussian(0.25))
        experiments.append(
            oi.Experiment(
                times,
                conc,
                observables=concentration,
                noise=oi.LogNormal(0.1),
                y0=jnp.array([dose, 0.0]),
                event_times=[observation],
                name=f"subject{i}",
            )
        )
    space = oi.Parameters(
        {
            "ka": oi.Positive(init=0.5),
            "ke": oi.Positive(init=0.3),
            "V": oi.Positive(init=10.0),
        }
    )
    return oi.Problem(MODEL, experiments, space, rtol=1e-10, atol=1e-10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--follow-up", type=float, default=15.0, help="hours")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    subjects = simulate_subjects(args.subjects, args.follow_up, args.seed, times)
    censored = sum(event is None for *_, event in subjects)
    print(f"{args.subjects} subjects, {censored} right-censored at {args.follow_up} h")
    problem = make_problem(subjects, times, args.follow_up)
    fit = oi.fit(problem)
    print(fit.summary())
    for name, (lo, hi) in fit.intervals().items():
        print(
            f"  true {name} = {TRUE[name]}: {'inside' if lo <= TRUE[name] <= hi else 'outside'}"
        )
    return fit, censored


if __name__ == "__main__":
    main()
