"""AI feedback verbs of the CLI: `rlhfkit generate` (candidate pairs from a model) and `rlhfkit label` (a judge
labels them in both orders, or is measured against human labels with --agreement). See docs/rlaif.md."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlhfkit.errors import RlhfkitError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="sample K responses per prompt and pair them up for a judge to label",
                       description="Sample --num-samples responses per prompt from a (SFT) model, batched and "
                                   "seeded, and write the pairs of distinct responses as JSONL "
                                   "({id, prompt, response_a, response_b, generator}) for `rlhfkit label`.")
    g.add_argument("--model", default=None, help="model folder or hub id (default: the default model)")
    g.add_argument("--prompts", required=True,
                   help="prompts file (JSONL with a `prompt` field) or a preference file (its prompts)")
    g.add_argument("--num-samples", "-k", type=int, default=4, help="responses sampled per prompt (>= 2)")
    g.add_argument("--output", "-o", required=True, help="candidate pairs file to write (JSONL)")
    g.add_argument("--pairing", choices=["all", "adjacent"], default="all",
                   help="all: every pair of distinct samples (K choose 2); adjacent: (1,2), (3,4), ... (K/2)")
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=42, help="seed of the sampling (same seed -> same file)")
    g.add_argument("--batch-size", type=int, default=8, help="sequences generated at once")
    g.add_argument("--max-prompt-length", type=int, default=256, help="prompts are left-truncated to this")
    g.add_argument("--num-prompts", type=int, default=0, help="use the first N prompts (0 = all)")
    g.add_argument("--json", action="store_true", help="print the counts as JSON")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    g.set_defaults(func=cmd_generate)

    la = sub.add_parser("label", help="label candidate pairs with an AI judge (both orders), or measure a judge",
                        description="Ask a judge about every candidate pair in both orders and keep a label only "
                                    "when both orders agree; writes a preference file for `rlhfkit dpo` / `rlhfkit "
                                    "rm train`, a summary JSON and a verdict cache beside it. With --agreement "
                                    "HUMAN.jsonl: the judge's accuracy and Cohen's kappa against human labels.")
    la.add_argument("--judge", required=True,
                    help="hf:MODEL (local chat model), openai:MODEL (OpenAI-compatible endpoint, see --base-url) "
                         "or rm:PATH (reward model from `rlhfkit rm train`)")
    la.add_argument("--input", "-i", help="candidate pairs (from `rlhfkit generate`)")
    la.add_argument("--output", "-o", help="preference file to write (JSONL)")
    la.add_argument("--agreement", metavar="HUMAN", help="instead of labelling: compare the judge with the human "
                                                         "labels of this preference file")
    la.add_argument("--rubric", help="text file with the judging rubric (default: helpfulness, honesty, "
                                     "harmlessness); hf and openai judges")
    la.add_argument("--cache", help="verdict cache (JSONL; default: OUTPUT_STEM.judge-cache.jsonl beside the "
                                    "output; with --agreement: none unless given)")
    la.add_argument("--concurrency", type=int, default=4, help="parallel requests (openai judges only)")
    la.add_argument("--seed", type=int, default=0, help="--agreement: seed of the a/b order of the human pairs")
    la.add_argument("--data-format", choices=["explicit", "conversational", "implicit"], default=None,
                    help="--agreement: force the human file's form")
    h = la.add_argument_group("openai judges")
    h.add_argument("--base-url", default=None, help="endpoint root, e.g. http://127.0.0.1:8000/v1 (vLLM), "
                                                    "http://127.0.0.1:11434/v1 (Ollama); default: OpenAI's")
    h.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key (unset or \"\": no key is sent)")
    h.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    h.add_argument("--max-retries", type=int, default=5, help="retries of a timed-out, 429 or 5xx request")
    h.add_argument("--rate-limit", type=float, default=0.0, help="requests per second, all threads (0 = no limit)")
    h.add_argument("--logprobs", action="store_true",
                   help="ask for the answer token's log-probs (confidence); not every server supports it")
    la.add_argument("--json", action="store_true", help="print the summary as JSON (stable keys)")
    la.add_argument("--no-progress", dest="progress", action="store_false")
    la.set_defaults(func=cmd_label)


# ----------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from rlhfkit.data.io import resolve_data_path

    if args.num_samples < 2:
        raise RlhfkitError(f"--num-samples must be >= 2 (a pair needs two responses), got {args.num_samples}")
    for name in ("max_new_tokens", "batch_size", "max_prompt_length"):
        if getattr(args, name) < 1:
            raise RlhfkitError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.num_prompts < 0 or args.temperature < 0 or not 0 < args.top_p <= 1:
        raise RlhfkitError("--num-prompts and --temperature must be >= 0 and --top-p in (0, 1]")
    resolve_data_path(args.prompts)  # a missing prompts file fails before the model loads
    from rlhfkit.rollout.candidates import generate_candidates

    counts = generate_candidates(args.model, args.prompts, args.output, num_samples=args.num_samples,
                                 pairing=args.pairing, max_new_tokens=args.max_new_tokens,
                                 temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                                 batch_size=args.batch_size, max_prompt_length=args.max_prompt_length,
                                 num_prompts=args.num_prompts, progress=args.progress)
    if args.json:
        print(json.dumps(counts, indent=1))
    else:
        print(f"wrote {counts['pairs']} candidate pairs from {counts['prompts']} prompts x {args.num_samples} samples "
              f"to {counts['output']} ({counts['duplicate_samples']} duplicate samples dropped, "
              f"{counts['prompts_without_pair']} prompts left without a pair)")
        print(f"next: rlhfkit label --judge JUDGE --input {counts['output']} --output prefs.jsonl")
    return 0


# ----------------------------------------------------------------------------------------------
# label
# ----------------------------------------------------------------------------------------------
def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def cmd_label(args: argparse.Namespace) -> int:
    from rlhfkit.judges import load_judge, parse_spec
    from rlhfkit.judges.prompt import read_rubric

    # 1. arguments, cheap checks first: nothing heavy loads before the inputs are known to be usable
    scheme, _ = parse_spec(args.judge)
    if args.agreement is None and (args.input is None or args.output is None):
        raise RlhfkitError("give --input PAIRS.jsonl and --output PREFS.jsonl, or --agreement HUMAN.jsonl")
    if args.agreement is not None and (args.input is not None or args.output is not None):
        raise RlhfkitError("--agreement measures the judge on a human preference file; it takes no --input/--output")
    if args.concurrency < 1:
        raise RlhfkitError(f"--concurrency must be >= 1, got {args.concurrency}")
    if scheme != "openai" and args.base_url is not None:
        raise RlhfkitError(f"--base-url goes with an openai: judge, not {scheme}:")
    if scheme == "rm" and args.rubric is not None:
        raise RlhfkitError("--rubric goes with hf: and openai: judges; a reward model has its own notion of better")
    rubric = read_rubric(args.rubric)

    # 2. data: read (and check) before the judge loads
    if args.agreement is not None:
        from rlhfkit.data.io import load_preferences

        examples = load_preferences(args.agreement, args.data_format)
    else:
        from rlhfkit.data.candidates import read_candidates

        if Path(args.output).resolve() == Path(args.input).resolve():
            raise RlhfkitError("--output must differ from --input")
        candidates = read_candidates(args.input)

    # 3. the judge
    options = dict(base_url=args.base_url, api_key_env=args.api_key_env, timeout=args.timeout,
                   max_retries=args.max_retries, rate_limit=args.rate_limit, logprobs=args.logprobs)
    judge = load_judge(args.judge, rubric=rubric, **options)

    # 4. agreement with humans, or labelling
    if args.agreement is not None:
        from rlhfkit.judges.agreement import agreement, format_report

        report = agreement(judge, args.agreement, examples=examples, seed=args.seed, cache_path=args.cache,
                           concurrency=args.concurrency, progress=args.progress)
        print(json.dumps(report, indent=1) if args.json else format_report(report))
        return 0

    from rlhfkit.judges.label import label_file, sidecar

    s = label_file(judge, args.input, args.output, candidates=candidates, cache_path=args.cache,
                   concurrency=args.concurrency, progress=args.progress)
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        print(f"judge:              {s['judge']}")
        print(f"labelled:           {s['labelled']} of {s['pairs']} pairs (coverage {_pct(s['coverage'])})")
        print(f"disagreement rate:  {_pct(s['disagreement_rate'])} ({s['disagreements']} pairs where the two "
              f"orders disagree; {s['ties']} ties, {s['failures']} failures)")
        print(f"judge calls:        {s['judge_calls']} ({s['cached_verdicts']} verdicts from the cache {s['cache']})")
        print(f"wrote {s['labelled']} preferences to {s['output']}; summary in {sidecar(s['output'], 'summary.json')}")
    if s["pairs"] and s["failures"] == s["pairs"]:
        print("rlhfkit: every pair failed: check the judge (the verdicts' `raw` errors are not cached; rerun to "
              "retry)", file=sys.stderr)
        return 1
    return 0
