"""Stage 3: rank the candidates. People do it in the browser app (`rlhf label`); here simulated
labelers, a rule-based stand-in, write rankings through the same format the app exports."""

import shlex

from _common import parse

from rlhf import SimulateConfig, run_simulate

args = parse(__doc__)
config = SimulateConfig(
    candidates=str(args.run_dir / "candidates.jsonl"),
    output=str(args.run_dir / "rankings.jsonl"),
    preference="concise",                # finished, shorter answers win
    num_labelers=3,
    noise=0.1,
)
print("rankings written to", run_simulate(config))
print("with people instead:  rlhf label --db labels.db --candidates", shlex.quote(config.candidates), "--users users.csv")
