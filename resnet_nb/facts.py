"""The report's statements *about the paper* (its §1 and §2.2), each quoted verbatim and checked against
the paper's text (He, Zhang, Ren and Sun, *Deep Residual Learning for Image Recognition*, 2015,
arXiv:1512.03385): what the paper says, where, and whether the report states it accurately.

These are not measurements: no record can test them. They are report claims all the same, so the
ledger lists them (in a table of their own, with their own verdicts: **accurate**, **partly
accurate**, **inaccurate**) and counts them apart from the lines judged on records.

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

FactVerdict = Literal["accurate", "partly accurate", "inaccurate"]
FACT_VERDICTS: tuple[FactVerdict, ...] = ("accurate", "partly accurate", "inaccurate")


@dataclass(frozen=True)
class FactCheck:
    """A statement of the report about the paper, and what the paper says."""

    key: str
    source: str  # "report §1"
    quote: str  # verbatim from the report
    paper: str  # what the paper says, with its section, table or figure
    verdict: FactVerdict
    chapter: str = "08_conclusion"


FACT_CHECKS: tuple[FactCheck, ...] = (
    FactCheck("cifar_degradation", "report §1",
              "using the CIFAR-10 data [8], it was noticed that increasing the depth of the neural network did not "
              "increase its accuracy and could even decrease it.",
              "Fig. 1: on CIFAR-10 the 56-layer plain net has higher training and test error than the 20-layer one.",
              "accurate"),
    FactCheck("fig1_depths", "report §1",
              "For example, on this graph 1.1, we can see that going from 34 to 56 layers is not efficient",
              "Fig. 1 compares plain nets of 20 and 56 layers (CIFAR-10); no 34-layer net is in it. The 34-layer "
              "nets are the ImageNet ones (Fig. 4, Table 2).", "inaccurate"),
    FactCheck("resnet34", "report §1",
              "The network described in the article is the ResNet34 defined in this way by 34 layers, hence its name.",
              "The 34-layer ResNet is the one drawn in Fig. 3 (ImageNet), but the article describes nets of 18, 34, "
              "50, 101 and 152 layers on ImageNet (Table 1) and of 20 to 1202 layers on CIFAR-10 (§4.2).",
              "partly accurate"),
    FactCheck("widths", "report §1",
              "However, the convolutions go from size 64 to 512 by powers of two",
              "64 to 512 filters are the ImageNet nets' widths (Fig. 3, Table 1); the report's Fig. 1.3 is captioned "
              "'Architecture CIFAR-10', whose nets have 16, 32 and 64 filters (§4.2).", "partly accurate"),
    FactCheck("imagenet_size", "report §1",
              "The model, in the article, is trained on the ImageNet database of 2012 with more than ten million "
              "images with ten thousand possible labels",
              "§4.1: ImageNet 2012 classification, 1000 classes, 1.28 million training images, 50k validation and "
              "100k test images.", "inaccurate"),
    FactCheck("eighteen_layers", "report §1",
              "the network with thirty four layers with residual learning obtains better results than the one without "
              "residual learning but also than the one with twenty layers whether with or without residual learning",
              "Fig. 4 and Table 2 (ImageNet): ResNet-34 has lower error than plain-34 and than the 18-layer nets, "
              "plain and residual. The shallower nets have 18 layers, not 20.", "partly accurate"),
    FactCheck("bottleneck", "report §1",
              "passing, for example, from two 3x3 convolution layers by two 1x1 convolution layers and one 3x3 layer "
              "which allows to go from 34 to 50 layers",
              "§4.1 (Fig. 5): each two-layer block of the 34-layer net is replaced by a 1×1, 3×3, 1×1 bottleneck "
              "block, which gives the 50-layer ResNet.", "accurate"),
    FactCheck("same_way_1202", "report §1",
              "Other models have been created in the same way to obtain networks with 101, 152 and even 1202 layers.",
              "101 and 152 layers: ImageNet nets with more bottleneck blocks (§4.1, Table 1). 1202 layers: a CIFAR-10 "
              "net of 6n + 2 layers with n = 200, built from the basic two-layer block (§4.2).", "partly accurate"),
    FactCheck("overfitting_1202", "report §1",
              "Indeed, the 1202 layer network is less accurate, although it has the same training error as the 152 "
              "layer network, this is due to overfitting and to the small data set.",
              "§4.2, Table 6: on CIFAR-10 the 1202-layer net (7.93 % test error) is worse than the 110-layer one "
              "(6.43 %) although both have similar training error; the paper argues overfitting, 19.4M parameters "
              "being unnecessarily large for this small dataset. The 152-layer net is an ImageNet net.",
              "partly accurate"),
    FactCheck("imagenet_train", "report §2.2",
              "(containing 1.28 million training images)",
              "§4.1: 1.28 million training images.", "accurate"),
    FactCheck("cifar_size", "report §2.2",
              "CIFAR-10 [8] consisting of 50 000 training images and 10 000 test images divided into 10 features.",
              "§4.2: 50k training images and 10k test images in 10 classes.", "accurate"),
    FactCheck("option_a_padding", "report §2.2",
              "either option (A) by adding a null padding to artificially increase the size, in this case the article "
              "advises to put a padding of 4 around each value",
              "Option A pads the shortcut's *new channels* with zeros (§3.3: extra zero entries padded for increasing "
              "dimensions). The 4-pixel padding is data augmentation (§4.2: 4 pixels padded on each side, a random "
              "32×32 crop, horizontal flip), unrelated to the shortcut.", "inaccurate"),
)


def fact_table(checks: Sequence[FactCheck] = FACT_CHECKS) -> pd.DataFrame:
    """The statements about the paper: source, the report's words, what the paper says, verdict."""
    return pd.DataFrame([{"source": c.source, "the report says": c.quote, "the paper says": c.paper,
                          "verdict": c.verdict} for c in checks],
                        columns=["source", "the report says", "the paper says", "verdict"])


def fact_counts(checks: Sequence[FactCheck] = FACT_CHECKS) -> dict[str, int]:
    counts = {v: 0 for v in FACT_VERDICTS}
    for c in checks:
        counts[c.verdict] += 1
    return counts


def fact_sentence(checks: Sequence[FactCheck] = FACT_CHECKS) -> str:
    """One Markdown sentence: how many statements about the paper, and how many of each verdict."""
    counts = fact_counts(checks)
    parts = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    return (f"**{len(checks)} statements of the report about the paper**, checked against the paper's text (not "
            f"against records, so counted apart from the lines above): {parts}.")
