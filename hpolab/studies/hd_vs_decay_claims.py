"""The claims of "Combining adaptive algorithms and hypergradient method" that studies 06 and 07 check.

Study 06's checks read its comparison of the tuned configurations (``result.summary``: one
row per task, method and role, ``tuned`` or Baydin et al.'s ``suggested`` setting, with the
final training and test loss over seeds and their 95 % half-widths) and its tuning grid
(``result.tuning``). Study 07's read the sensitivity table (``result.summary``: per task,
optimizer, curve and alpha_0 the minimal training loss reached, mean over seeds).

The paper states its findings in words; the checks make each one a comparison of numbers:

- "significantly" lower: the two 95 % intervals over seeds do not overlap;
- "most" settings: more than half of those the run has;
- a curve's **valley**: the alpha_0 around its best whose loss stays within
  :data:`NEAR_BEST` of the way from the best loss to chance (ln 10, ten classes), the curve
  read as straight lines between grid points on a log axis; its **width** is the span of
  those alpha_0 in decades (wider: easier to tune); one valley is **wider** than another
  when it spans at least :data:`WIDER` times the decades (a difference of a few hundredths of
  a decade, such as HD with a beta too small to move the rate against the constant rate, is
  no difference);
- the **rise** on either side of the best alpha_0: the loss gained per decade to the next
  grid point (infinite when that run diverged); a curve that "worsens faster when
  increasing the learning rate" rises more to the right than to the left.

A diverged configuration counts as worse than any finite loss. Statements the paper makes
for VGG-16 are checked on VGG-16 (``paper`` scale) or its ``cpu`` stand-in, the small CNN on
the CIFAR-10 subset; statements comparing VGG-16 with ResNet-18 need both (``paper`` scale).
"""

from __future__ import annotations

from hpolab.claims import Claim
from hpolab.studies.hd_vs_decay_claims_comparison import (
    check_adam_hd_generalizes_worst, check_adam_hd_tuned_is_baydins, check_decay_best_training_on_cifar,
    check_decay_generalizes_better, check_hd_needs_both, check_hd_not_better_than_decay,
    check_hd_tuning_beats_suggested, check_sgd_decay_generalizes_better_than_adam, check_sgd_hd_beats_adam_hd,
)
from hpolab.studies.hd_vs_decay_claims_rules import shapes_table  # noqa: F401  (re-exported: the notebook calls it)
from hpolab.studies.hd_vs_decay_claims_sensitivity import (
    _on_vgg, check_adam_as_hard_as_sgd, check_adam_more_symmetric, check_decay_eases_adam,
    check_decay_harmless_small_lr, check_decay_improves_sgd, check_decay_raises_best_lr, check_decay_steeper_right,
    check_hd_needs_beta, check_hd_robust_to_alpha0, check_resnet_decay_flattens_adam, check_resnet_wider_valley,
    check_sgd_worse_above_best, check_sgdn_hd_least_sensitive,
)

SOURCE = "HD vs lr-decay (ICLR 2019 submission)"


# ---------------------------------------------------------------------------------------------

N06, N07 = "06_hd_vs_decay", "07_lr_sensitivity"
CLAIMS = [
    Claim("hd-tuning-beats-suggested", N06,
          "As can be seen in Figure 1 [hypergradient with the parameters suggested by Baydin et al. (2018) against "
          "the optimized ones], a slightly better tuning improves drastically the performance.",
          f"{SOURCE}, section 3.2, Figure 1",
          check_hd_tuning_beats_suggested),
    Claim("hd-needs-alpha0-and-beta", N06,
          "Even if hypergradient decreases the sensitivity to the initial learning rate for a fixed value of beta, "
          "tuning both parameters remains essential.", f"{SOURCE}, section 3.2, Figure 1", check_hd_needs_both),
    Claim("adam-hd-tuned-is-baydins", N06,
          "Our tuned configuration for ADAM-HD actually coincides with the one given in Baydin et al. (2018) "
          "[on MNIST].", f"{SOURCE}, section 3.2, Figure 1 (top)", check_adam_hd_tuned_is_baydins),
    Claim("sgd-hd-beats-adam-hd", N06,
          "SGD-HD and SGDN-HD are competitive and able to outperform ADAM-HD.", f"{SOURCE}, section 3.2, Figure 1",
          check_sgd_hd_beats_adam_hd),
    Claim("adam-hd-generalizes-worst", N06,
          "ADAM-HD is consistently outperformed by SGD-HD and SGDN-HD [in test loss].",
          f"{SOURCE}, section 3.4, Figure 3", check_adam_hd_generalizes_worst),
    Claim("hd-not-better-than-decay", N06,
          "Hypergradient can replicate a close training performance to lr-decay: in 5 out of 9 settings it performs "
          "comparably to lr-decay, in the 4 others significantly worse; it does not perform better than the fixed "
          "decay.", f"{SOURCE}, section 3.3, Figure 2; section 5", check_hd_not_better_than_decay),
    Claim("decay-generalizes-better-than-hd", N06,
          "Hypergradient has a worse generalization performance than lr-decay, except SGDN-HD that is the best "
          "generalizing method for VGG net.", f"{SOURCE}, section 3.3, Figure 3", check_decay_generalizes_better),
    Claim("sgd-decay-generalizes-better-than-adam-decay", N06,
          "SGD-decay and SGDN-decay tend to generalize better than ADAM-decay for the VGG network; the same "
          "observation can be made for ResNet18.", f"{SOURCE}, section 3.4, Figure 3",
          check_sgd_decay_generalizes_better_than_adam),
    Claim("decay-trains-best-on-cifar", N06,
          "When training on CIFAR-10, SGD-decay and SGDN-decay provide consistently the best performance.",
          f"{SOURCE}, section 3.3, Figure 2", check_decay_best_training_on_cifar),
    Claim("sgd-worse-above-best-lr", N07,
          "For VGG net, the performance of SGD and SGDN worsens faster when increasing the learning rate than when "
          "decreasing it.", f"{SOURCE}, section 4, Figure 4", _on_vgg(check_sgd_worse_above_best)),
    Claim("adam-more-symmetric", N07,
          "ADAM shows a similar U-shaped dependency of the performance with respect to the initial learning rate, "
          "but its behaviour is more symmetric.", f"{SOURCE}, section 4, Figure 4", _on_vgg(check_adam_more_symmetric)),
    Claim("resnet-wider-valley", N07,
          "All the three gradient methods exhibit a wider valley around the best learning rate value [on ResNet18 "
          "than on VGG16]: it is easier to tune the learning rate for a ResNet18.", f"{SOURCE}, section 4, Figures 4-5",
          check_resnet_wider_valley),
    Claim("adam-as-hard-to-tune-as-sgd", N07,
          "ADAM with a constant stepsize is as difficult to tune as stochastic gradient.",
          f"{SOURCE}, section 4, Figures 4-5", check_adam_as_hard_as_sgd),
    Claim("decay-raises-best-lr", N07,
          "For all these experiments, lr-decay moves the best learning rate value to a higher one.",
          f"{SOURCE}, section 4.1, Figure 6", check_decay_raises_best_lr),
    Claim("decay-improves-sgd", N07,
          "Concerning the VGG architecture, for SGD and SGDN, lr-decay improves over their performance with the best "
          "constant stepsize.", f"{SOURCE}, section 4.1, Figure 6a", _on_vgg(check_decay_improves_sgd)),
    Claim("decay-steeper-right-of-best", N07,
          "[For SGD and SGDN on VGG, lr-decay's improvement comes] at the expense of a much sharper slope at the "
          "right of its own new best learning rate.", f"{SOURCE}, section 4.1, Figure 6a",
          _on_vgg(check_decay_steeper_right)),
    Claim("decay-eases-adam", N07,
          "For ADAM, lr-decay decreases the sensitivity at the right of best stepsize, which makes tuning less "
          "challenging for ADAM-decay than SGD/SGDN-decay.", f"{SOURCE}, section 4.1, Figure 6a",
          _on_vgg(check_decay_eases_adam)),
    Claim("decay-harmless-at-small-lr", N07,
          "For smaller scales of the learning rate lr-decay is not penalizing the performance.",
          f"{SOURCE}, section 4.1, Figure 6a", _on_vgg(check_decay_harmless_small_lr)),
    Claim("resnet-decay-flattens-adam", N07,
          "For ResNet18, lr-decay seems to significantly decrease the sensitivity for ADAM, by flattening its "
          "U-shaped sensitivity curve.", f"{SOURCE}, section 4.1, Figure 6b", check_resnet_decay_flattens_adam),
    Claim("hd-robust-to-alpha0", N07,
          "Hypergradient methods have a low sensitivity to the choice of the stepsize alpha_0, for a fixed "
          "hypergradient learning rate beta: for several settings of beta, the performance is nearly constant.",
          f"{SOURCE}, section 4.2, Figure 7", _on_vgg(check_hd_robust_to_alpha0)),
    Claim("hd-needs-beta-tuned", N07,
          "To reach higher performance, tuning beta is crucial.", f"{SOURCE}, section 4.2, Figure 7",
          _on_vgg(check_hd_needs_beta)),
    Claim("sgdn-hd-least-sensitive", N07,
          "SGDN is the one [of the hypergradient methods] that is less sensitive to the tuning compared to "
          "stochastic gradient and Adam.", f"{SOURCE}, section 4.2, Figure 7", _on_vgg(check_sgdn_hd_least_sensitive)),
]
