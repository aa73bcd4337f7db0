"""`alexnet prepare`: an image-folder tree or archive into a store (§2)."""
from __future__ import annotations

from ..errors import UserError
from .args import POSITIVE, Number


def cmd_prepare(args) -> int:
    from ..data.prepare import PrepareOptions, prepare
    labels: dict[str, str] = {}
    for item in args.labels or []:
        split, sep, path = item.partition("=")
        if not sep or not split or not path:
            raise UserError(f"--labels {item!r}: expected SPLIT=FILE, e.g. --labels val=LOC_val_solution.csv")
        if split in labels:
            raise UserError(f"--labels: split {split} is given twice ({labels[split]}, {path})")
        labels[split] = path
    options = PrepareOptions(size=args.size, fmt=args.format, quality=args.quality, subsampling=args.subsampling,
                             progressive=args.progressive, full_decode=args.full_decode, splits=args.splits,
                             limit_per_class=args.limit_per_class, classes=args.classes, labels=labels or None,
                             synsets=args.synsets, imagenet=True if args.imagenet else None,
                             class_names=args.class_names, workers=args.workers, strict=args.strict,
                             progress=not args.quiet)
    summary = prepare(args.src, args.out, options)
    print("\n".join(summary.lines()))
    return 0


def register(sub) -> None:
    p = sub.add_parser("prepare", help="turn an image-folder tree or archive into a store (§2)")
    p.add_argument("src", help="SRC/<split>/<class>/<images>, or a .tar/.tar.gz with that layout, or a folder of "
                               "ImageNet's files as distributed (see --imagenet)")
    p.add_argument("out", help="store folder to create (re-running continues an interrupted prepare)")
    p.add_argument("--size", type=POSITIVE, default=256, help="stored side S (§2: 256)")
    p.add_argument("--format", choices=["raw", "jpeg"], default="raw", help="raw uint8 or JPEG-compressed")
    p.add_argument("--quality", type=Number(int, 1, 100), default=90,
                   help="JPEG quality for --format jpeg (docs/guide.md: Store format, measured)")
    p.add_argument("--subsampling", choices=["4:4:4", "4:2:2", "4:2:0"], default="4:2:0",
                   help="chroma subsampling of the stored JPEGs (--format jpeg); see the store-format table of docs/guide.md")
    p.add_argument("--progressive", action="store_true",
                   help="store progressive JPEGs (--format jpeg): smaller, slower to decode, no GPU hardware decode")
    p.add_argument("--full-decode", action="store_true",
                   help="decode large JPEGs at full scale (slower; pixels identical to torchvision's Resize+CenterCrop)")
    p.add_argument("--workers", type=POSITIVE, default=None, help="processes (default: all cores)")
    p.add_argument("--splits", nargs="+", default=None, help="only these splits (default: all)")
    p.add_argument("--limit-per-class", type=POSITIVE, default=None, help="first K images per class (demos, tests)")
    p.add_argument("--strict", action="store_true", help="any unreadable image is an error instead of a skip")
    p.add_argument("--labels", action="append", metavar="SPLIT=FILE",
                   help="split SPLIT is flat (ImageNet's val: SRC/SPLIT/ILSVRC2012_val_*.JPEG, no class folders); "
                        "FILE gives each image's class, a class folder name of the other splits: 'file,class' "
                        "lines (Kaggle's LOC_val_solution.csv; comma, tab or space; header and extension optional) "
                        "or the devkit's ILSVRC2012_validation_ground_truth.txt (needs --synsets). Unknown classes, "
                        "missing files and unlabelled images are skipped into skipped.tsv. Repeatable")
    p.add_argument("--synsets", metavar="FILE",
                   help="for the devkit's ground truth: one wnid per line in ILSVRC2012_ID order (line 1 = ID 1), "
                        "made from the devkit's meta.mat with: python -c \"import scipy.io; "
                        "s = scipy.io.loadmat('meta.mat')['synsets'][:1000, 0]; print('\\n'.join(str(x['WNID'][0]) "
                        "for x in sorted(s, key=lambda x: int(x['ILSVRC2012_ID'][0, 0]))))\" > synsets.txt")
    p.add_argument("--imagenet", action="store_true",
                   help="SRC holds ImageNet as distributed, read in place (found without this flag too; with it, "
                        "their absence is an error): ILSVRC2012_img_train.tar (a tar of class tars), "
                        "ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz (meta.mat: class order = ILSVRC2012_ID, "
                        "names; the validation ground truth); the 2010 release (ILSVRC2010_images_{train,val,test}.tar, "
                        "ILSVRC2010_devkit-1.0.tar.gz, ILSVRC2010_test_ground_truth.txt); or Kaggle's "
                        "ILSVRC/Data/CLS-LOC/ with LOC_val_solution.csv and LOC_synset_mapping.txt")
    p.add_argument("--classes", type=POSITIVE, default=None, metavar="N",
                   help="keep N classes spread evenly over the sorted ids, the same from every layout "
                        "(ImageNet-100 style; with --limit-per-class K, a store to try in an hour)")
    p.add_argument("--class-names", metavar="FILE",
                   help="names people read: 'ID NAME' lines (words.txt, synset_words.txt style) or one name per line "
                        "in class order; by default read from the set's own words.txt, synset_words.txt, "
                        "LOC_synset_mapping.txt, classes.txt or devkit")
    p.add_argument("--quiet", action="store_true", help="no estimate line and no progress bar")
    p.set_defaults(func=cmd_prepare)
