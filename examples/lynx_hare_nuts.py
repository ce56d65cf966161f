"""NUTS on the lynx–hare Lotka–Volterra model (posteriordb priors) with `oi.sample`.

Data, model and priors are posteriordb's `hudson_lynx_hare-lotka_volterra`, built by
`odeinfer.benchmarking.lynx_hare()` (its source, `odeinfer/_benchmark/_posteriordb.py`,
shows how the `oi.Problem` is written; the data and the reference posterior means ship
in `odeinfer/data/`).

python examples/lynx_hare_nuts.py --num-warmup 500 --num-samples 500 --num-chains 4
"""

import argparse
import json
import pathlib

import odeinfer as oi
import odeinfer.benchmarking as oib


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write the summary as JSON here")
    args = parser.parse_args(argv)
    bench = oib.lynx_hare(rtol=1e-6, atol=1e-6)
    posterior = oi.sample(
        bench.problem,
        bench.priors,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        key=args.seed,
        init=bench.init,
    )
    table = posterior.summary()
    print(table[["mean", "sd", "q5", "q95", "ess_bulk", "r_hat"]])
    print(
        f"divergences: {posterior.num_divergences}, solver failures: {posterior.num_failures}"
    )
    if args.output:
        pathlib.Path(args.output).write_text(
            json.dumps(
                {
                    n: [float(table.loc[n, "mean"]), float(table.loc[n, "sd"])]
                    for n in bench.names
                }
            )
        )
    return posterior


if __name__ == "__main__":
    main()
