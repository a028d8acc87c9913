"""The synthesized bimodal target (gdt_reference.md §2.6, the project page): CDT vs DT asked for two behaviours at once.

  python -m launch.paper --experiment=gdt_bimodal --scale=quick --vmap_seeds   # 2 CPU cores: ~50 min, plus ~10 for its data
  python -m launch.paper --experiment=gdt_bimodal --scale=full --vmap_seeds    # the paper protocol, a GPU

CDT (the future x-velocity histogram) and DT (its future sum / 1000) train on the union of several datasets
(`extra_datasets`), each trajectory keeping its task, and are asked for mixtures (`eval.synthetic=mixture`): for each
weight w of (0.25, 0.5, 0.75) and each pair i of held-out targets, w h(forward i) + (1 - w) h(second i), a bimodal
x-velocity histogram, rolled out in halfcheetah. CDT is fed the mixture (open loop: p* at every step; closed loop:
what is left of it after what was achieved); DT the mixture's expected future sum (closed loop: minus what was
achieved). Score: W1 between the target and the pooled rollout steps' x-velocity histogram. The held-out
trajectories of every task are targets too, each rolled out in its own env with the options its data recorded.

The data of `quick`: forward-running cheetahs (halfcheetah quick expert, sampled actions), standing ones
(cheetah_vel with target_velocity 0, 204,800 PPO steps, mode actions: x-velocity -0.01), halfcheetah's medium level
(~0.8 m/s, near a half/half mixture's mean) and switching episodes (`gdt.data.switching`: the forward expert hands
over to the standing one, or the reverse, at a uniformly random step; a task of its own). Without the switching
episodes (`quick_no_switch`) no trajectory has both modes: the state tells a running from a standing cheetah after a
few steps, and neither model produced a bimodal episode. Two choices of `quick` came from the measurements below:
a quarter of the training windows start at an episode's first step (`train.episode_start_fraction=0.25`, both
methods), where whether a cheetah runs or stands is settled and a uniform start puts 1/1000 of the windows; and CDT
reads its histogram as its cumulative sum over the bins (`model.histogram_input=cdf`): as probabilities (the
reference's) an input ~1/30 of DT's made CDT ignore it at this budget, as densities (x 30 bins) it did not stand
when asked on one host's data.

Scales:
  demo             `make demo`: the demo preset's forward runner, scripted standing and rocking cheetahs
                   (`gdt.data.scripted`: no torque, or a 3 Hz sine on every joint that rocks it in place; both have
                   mean x-velocity ~0, the first a spike at 0, the second spread over about -2..2 m/s) and 150
                   episodes switching between the runner and the standing cheetah; quick's model and recipe (a
                   quarter of the windows from step 0, CDT's histogram as its cumulative sum), 3000 steps, 2 best + 1
                   middle held-out targets per task, 4 episodes per target, seeds 0-2, the nearest-mass closed loop
                   only (`eval.schedule=closed_loop_nearest`). Scored on the mixtures of forward and standing targets
                   and on standing vs rocking targets of the same rank: DT is told nearly the same for both, so its
                   pair mean W1 cannot go below half their W1 apart; summary.md holds the verdict tables.
  demo_ppo_stand   the demo until 2026-12-05: the forward expert and medium level, a PPO standing cheetah
                   (cheetah_vel at 0 m/s, 20,480 PPO steps) and 150 switching episodes, mixtures only.
  demo_nodrop      demo_ppo_stand without dropout (model.dropout_rate=0; the configs' 0.1 is the paper's).
  demo_twin        demo_ppo_stand asked for twins instead of mixtures (`eval.synthetic=twin`): for each of 2
                   middle forward targets, taken at the lower quarter of the forward task's returns (its medium
                   level), and each best pair, the forward/standing mixture with that target's mean x-velocity and DT's conditioning;
                   a return-conditioned policy acts alike on a target and its twin, so its pair mean W1 cannot go
                   below half the two targets' W1 apart.
  demo_reverse     twins a return-conditioned DT cannot tell from a standing cheetah: the demo's forward runner, a
                   backward one (cheetah_vel tracking -5 m/s, 368,640 PPO steps, mode actions), 150 episodes handing
                   over between the two, and demo_ppo_stand's standing cheetahs; for each of 2 middle standing targets
                   (`eval.twin_task`) and each best pair, the forward/backward mixture with the standing target's mean
                   x-velocity (~0) and DT's conditioning; 2 best + 2 middle held-out targets per task, otherwise
                   demo_ppo_stand's recipe.
  quick            the data above, the CPU-sized model (embed 64, 2 layers, batch 32, lr 3e-4), 6000 steps, a
                   quarter of the windows from step 0, CDT's histogram as its cumulative sum, 3 best + 2 middle
                   held-out targets per task, 4 episodes per target, seeds 0-2; evaluated open loop, closed loop and
                   nearest-mass closed loop (the other quick scales too).
  quick_density    quick with uniform window starts and CDT's histogram as densities (what `quick` was until
                   2026-12-03).
  quick_start      quick_density with a quarter of the windows from step 0 (quick with densities).
  quick_reverse    quick_density with a backward-running cheetah (cheetah_vel at -1.5 m/s, 614,400 PPO steps) as the
                   second part and its switching episodes, plus the standing cheetahs: a forward/backward mixture has
                   a standing cheetah's future sum.
  quick_no_switch  forward + standing only, CDT's histogram as probabilities (what was measured first).
  quick_backflip   forward + cheetah_backflip's expert (1M PPO steps), the paper's pair, densities.
  full             full data (1M transitions per level, brax's PPO settings) with cheetah_backflip, gdt_base's paper
                   model and 100k steps, 5 best + 5 middle per task, 20 episodes per target, seeds 0-2; a GPU job.
Expected result (the paper's claim): CDT's W1 to the mixtures below DT's by more than the seed std; the report says
per weight whether it is, and (summary.md, "one mode per episode or both?") how the rollouts divide their steps
between the two modes' x-velocity bands and how many episodes hold both modes.

Every command below writes its report (report.md, summary.md, CSVs, PNGs) into its --workdir (default
workdirs/paper/gdt_bimodal_<scale>); a `--set=KEY=VALUE` variant needs a --workdir of its own and, with
`--runs=cdt`, trains CDT only. PPO data differ between CPUs (deterministic on one), and so does everything trained on
them: two hosts' quick data gave opposite verdicts under quick_density (below).

`quick`, host B, 2026-12-03 (the command above; CDT's runs are those of `--scale=quick_start --runs=cdt
--set=model.histogram_input=cdf --workdir=workdirs/paper/gdt_bimodal_quick_start_cdf`, 24m03s for 3 seeds and their
evaluations beside another training job, DT's those of `--scale=quick_start`, the same configs: `--dry_run` lists
every job of `quick` as finished on them), W1 to the mixtures, w = 0.25 / 0.5 / 0.75 / all, mean ± std over seeds 0-2:
  nearest-mass closed loop  CDT 0.233 ± 0.043 / 0.316 ± 0.073 / 0.370 ± 0.042 / 0.306 ± 0.015
                            DT  0.367 ± 0.036 / 0.457 ± 0.045 / 0.381 ± 0.011 / 0.402 ± 0.015
  closed loop               CDT 0.402 ± 0.009 / 0.454 ± 0.130 / 0.376 ± 0.042 / 0.411 ± 0.056 (DT as above: its
                            update is the same under both closed loops)
  open loop                 CDT 0.411 ± 0.003 / 0.559 ± 0.048 / 0.324 ± 0.020 / 0.431 ± 0.018
                            DT  0.342 ± 0.058 / 0.500 ± 0.121 / 0.440 ± 0.056 / 0.427 ± 0.047
CDT is below DT by more than the seed std under the nearest-mass closed loop (w = 0.25, 0.5 and all mixtures, by
0.095 against a std of 0.015 there), level under the bin-by-bin closed loop and open loop. The mode table
(summary.md, nearest-mass closed loop, 60 episodes per weight; bands below 0.47 m/s / between / above 1.04 m/s): at
w = 0.5 the target puts 0.59 / 0.09 / 0.33 of its mass in the bands, CDT's steps 0.59 / 0.08 / 0.33 (30 episodes hold
both modes, 12 stand throughout), DT's 0.46 / 0.10 / 0.44 (31 and 17); at w = 0.25 the target 0.79 / 0.05 / 0.16, CDT
0.89 / 0.03 / 0.08, DT 0.96 / 0.02 / 0.02; at w = 0.75 both run too much (target 0.39 / 0.13 / 0.49, CDT 0.25 / 0.13 /
0.63, DT 0.23 / 0.13 / 0.64). Held-out targets: both stand when asked (0.01 ± 0.00 m/s), forward (1.61 m/s) CDT 1.50
± 0.01, DT 1.61 ± 0.01. Not yet run on host A's data.
Seeds 3-5, 2026-12-04, on a machine that made host B's quick data (expert 1450.4, medium 710.4): `--seeds=3,4,5
--workdir=workdirs/paper/gdt_bimodal_quick_s345`, 27m45s from nothing on 2 idle cores (data 7m04s), w = 0.25 / 0.5 /
0.75 / all:
  nearest-mass closed loop  CDT 0.280 ± 0.070 / 0.374 ± 0.109 / 0.329 ± 0.060 / 0.328 ± 0.057 (per seed all: 0.289 /
                            0.408 / 0.286)
                            DT  0.416 ± 0.011 / 0.486 ± 0.073 / 0.413 ± 0.079 / 0.438 ± 0.046 (0.430 / 0.387 / 0.498)
  closed loop               CDT 0.397 ± 0.018 / 0.553 ± 0.150 / 0.496 ± 0.148 / 0.482 ± 0.099 (DT as above)
  open loop                 CDT 0.416 ± 0.001 / 0.578 ± 0.208 / 0.489 ± 0.153 / 0.494 ± 0.117
                            DT  0.409 ± 0.021 / 0.571 ± 0.086 / 0.452 ± 0.032 / 0.477 ± 0.023
The same verdicts as seeds 0-2: CDT below DT by more than the seed std under the nearest-mass closed loop (every
weight; on 2 of 3 seeds), level otherwise. Mode table at w = 0.5: CDT 0.71 / 0.06 / 0.23 (stands too much), DT 0.50 /
0.09 / 0.41; at w = 0.25 DT stands through all 60 episodes (0.99 / 0.01 / 0.00).
Data seed 1 (`--data_seed=1 --data_root=workdirs/paper/quick_ds1_data --workdir=workdirs/paper/gdt_bimodal_quick_ds1`,
24m18s from nothing, forward expert 1.97 m/s), all mixtures: nearest-mass CDT 0.386 ± 0.035, DT 0.302 ± 0.004;
closed loop CDT 0.422 ± 0.014, DT 0.302 ± 0.004; open loop CDT 0.573 ± 0.074, DT 0.461 ± 0.038: DT below CDT in
every schedule; the quick verdict is its dataset's.

`quick_density` (`--scale=quick_density`; it was `quick` then), host A, 2026-12-02 (19m45s for both methods with the
data there, 2 idle cores), W1 to the mixtures, w = 0.25 / 0.5 / 0.75 / all, mean ± std over seeds 0-2:
  closed loop  CDT 0.203 ± 0.085 / 0.213 ± 0.050 / 0.267 ± 0.051 / 0.227 ± 0.046
               DT  0.317 ± 0.023 / 0.316 ± 0.032 / 0.253 ± 0.030 / 0.295 ± 0.027
  open loop    CDT 0.361 ± 0.102 / 0.326 ± 0.027 / 0.406 ± 0.018 / 0.365 ± 0.038
               DT  0.310 ± 0.043 / 0.364 ± 0.018 / 0.314 ± 0.041 / 0.329 ± 0.029
CDT is below DT by more than the seed std in closed loop (w = 0.25, 0.5 and all mixtures), not in open loop, where a
fixed p* never tells a running cheetah that its share of running is spent. Held-out targets, closed loop: forward
W1 CDT 0.218 ± 0.039, DT 0.258 ± 0.013; asked to stand, CDT 0.183 ± 0.244 m/s (seed 0 jogs at 0.56), DT 0.013 ±
0.008. With the reference's probability input (quick's own CDT at commit d076c1b; today `--scale=quick_density
--set=model.histogram_input=probability`) CDT ignored its target at this budget: it ran in every episode, asked to
stand as well, closed loop all mixtures 0.728 ± 0.045.

`quick_density`, host B (another 2-core machine), 2026-12-03, from nothing (42m12s on 2 idle cores: data 9m49s,
CDT 14m41s, DT 17m42s; halfcheetah quick expert 1450 and medium 710 where host A had 1483 and 634): the claim fails.
CDT stood when asked on 1 of 3 seeds (0.87 ± 0.61 m/s, DT 0.04 ± 0.01); all mixtures closed loop CDT 0.611 ± 0.226,
DT 0.375 ± 0.036 (w = 0.25 / 0.5 / 0.75: CDT 0.767 / 0.628 / 0.437, DT 0.284 / 0.468 / 0.372), nearest-mass closed
loop CDT 0.598 ± 0.215 (DT's update is the same under both), open loop CDT 0.606 ± 0.204, DT 0.438 ± 0.059. CDT
variants on the same data (`--scale=quick_density --runs=cdt --workdir=<its own>` plus, 7-23 min each on 2
idle cores):
  --set=model.histogram_input=cdf   asked to stand 0.80 ± 0.44 m/s; closed loop all mixtures 0.497 ± 0.102
                                    (w = 0.5: 0.363 ± 0.166 vs DT 0.468 ± 0.091), nearest 0.496 ± 0.072, open
                                    loop 0.468 ± 0.081
  --set=train.num_steps=12000       stood on 2 of 3 seeds (nearest: 1.04 / 0.01 / 0.19 m/s); all mixtures per seed,
                                    nearest 0.688 / 0.511 / 0.445, open loop 0.735 / 0.538 / 0.530: more steps
                                    alone do not fix it
Why CDT ran when asked to stand: whether a cheetah runs or stands is settled in its first steps, and a uniform window
start puts 1/1000 of the training windows at step 0. `python -m experiments.conditioning_sensitivity` (its docstring
has the command) teacher-forces 8 standing-expert trajectories through a checkpoint with their own z_t and with a
forward expert's: at step 0 the swap moved quick_density's CDT action by 0.055 / 0.061 / 0.113 (seeds 0-2; L2), DT's
by 0.559 / 0.378 / 0.485, and CDT missed the expert's step-0 action by 0.560 / 0.611 / 0.655 (DT 0.370 / 0.371 /
0.442). `quick_start` (`train.episode_start_fraction=0.25`: a quarter of the windows start at step 0) raised CDT's
step-0 swap to 0.728 / 0.668 / 0.720 and cut its step-0 error to 0.120 / 0.090 / 0.079 (steps 20 and 100: swaps
0.03-0.09).

`quick_start`, host B, 2026-12-03 (`python -m launch.paper --experiment=gdt_bimodal --scale=quick_start
--vmap_seeds`, the same data; CDT's 3 seeds 13m04s, then DT and the extra evaluations 34m50s, 2 idle cores): both
models stand when asked on every seed (0.01 ± 0.00 m/s), but with densities DT stays ahead on the mixtures: all
mixtures closed loop CDT 0.480 ± 0.038, DT 0.402 ± 0.015 (w = 0.25 / 0.5 / 0.75: CDT 0.381 / 0.602 / 0.458, DT 0.367
/ 0.457 / 0.381); nearest-mass CDT 0.467 ± 0.037; open loop CDT 0.570 ± 0.009, DT 0.427 ± 0.047. Its summary.md's
mode table (nearest-mass closed loop, 60 episodes per weight; bands below 0.47 m/s / between / above 1.04 m/s): at w
= 0.5 the target puts 0.59 / 0.09 / 0.33 of its mass in the bands, CDT's steps 0.80 / 0.04 / 0.16 (38 episodes stay
in the standing band, 17 hold both modes), DT's 0.46 / 0.10 / 0.44 (17 and 31): CDT now stands through too many
episodes, DT splits its episodes closer to the target's proportions. With the cumulative sum instead (`quick`, above)
CDT's steps match the target's proportions at w = 0.5.

`demo` (= `make demo`), 2026-12-05, on the machine of host B's numerics: two fresh clones' `make demo` (data made from
nothing; 11m27s on 2 idle cores and 15m07s beside another run, with the install; data 3m31s) and
`--data_root=workdirs/paper/rev_data --workdir=workdirs/paper/demo_sr` (whose forward run is the same job; 12m19s
beside other jobs) wrote the same per_seed.csv byte for byte; nearest-mass closed loop, mean ± std over seeds 0-2
(per seed in brackets):
  standing vs rocking pairs   CDT 0.053 ± 0.017 (0.047 / 0.076 / 0.036), DT 0.487 ± 0.068 (0.402 / 0.567 / 0.491),
                              bound 0.420 (the targets 0.841 apart; their means 0.052 m/s apart)
  standing / rocking targets  CDT 0.025 ± 0.030 / 0.081 ± 0.008, DT 0.403 ± 0.146 / 0.570 ± 0.239
  mixtures w = 0.25 / 0.5 / 0.75 / all
                              CDT 0.367 ± 0.095 / 0.476 ± 0.091 / 0.311 ± 0.024 / 0.385 ± 0.070
                              DT  0.934 ± 0.015 / 0.676 ± 0.010 / 0.352 ± 0.019 / 0.654 ± 0.002
CDT stands and rocks when asked on every seed; DT's rollouts on a pair are 0.21-0.31 apart in W1 (CDT's 0.75-0.84):
it rocks through part of its standing episodes and stands through part of its rocking ones. On the mixtures DT runs
most of the time (w = 0.25: 0.33 / 0.10 / 0.57 of its steps below 0.49 m/s / between / above 0.85, the target 0.81 /
0.03 / 0.16, CDT 0.84 / 0.03 / 0.13): with a rocking cheetah in the data a remaining sum of ~0 no longer says stand.
Other data, the same command with `--data_seed=N --data_root=workdirs/paper/demo_dsN_data
--workdir=workdirs/paper/demo_sr_dsN` (every data job with seed N) or `SEQRL_NO_XLA_DEFAULTS=1` in front of it with
`--data_root=workdirs/paper/demo_noxla_data --workdir=workdirs/paper/demo_sr_noxla` (XLA's other CPU emitters; its
forward run there was made with them), 9m44s-11m10s each with the forward run there, two at a time on 2 cores;
pairs CDT / DT (bound), all mixtures CDT / DT:
  data seed 1 (runner 1.72 m/s)   0.035 ± 0.004 / 0.498 ± 0.078 (0.424), 0.392 ± 0.046 / 0.530 ± 0.075
  data seed 2 (runner 1.14 m/s)   0.043 ± 0.008 / 0.356 ± 0.011 (0.344), 0.376 ± 0.047 / 0.672 ± 0.018
  other emitters (1.46 m/s)       0.041 ± 0.013 / 0.475 ± 0.053 (0.419), 0.334 ± 0.060 / 0.499 ± 0.153
CDT's pair mean is below DT's and 5-14x below the bound on all 12 (dataset, seed) pairs, its W1 over all mixtures
below DT's on all 12; DT at or above the bound but for seed 0 of the default data and of data seed 1 (0.402, 0.391:
the bound is for identical conditioning, and a pair's means differ by 0.05-0.09 m/s). Per weight, at w = 0.25 CDT is
above DT on data seed 1 (0.468 vs 0.310 ± 0.171). On data seed 2 DT stands on both targets of a pair (standing 0.098,
rocking 0.615), elsewhere it mixes the two.

`demo_ppo_stand` (= `make demo` until 2026-12-05; `--scale=demo_ppo_stand` runs it, and every command of this
paragraph needs it in place of --scale=demo today), 2026-12-04, on a machine whose numerics equal host B's (the
50-episode demo below gave host B's table here), two fresh clones' `make demo` (data made from nothing; 12m26s and
12m14s with the install, 2 idle cores): the same per_seed.csv byte for byte; nearest-mass closed loop, w = 0.25 /
0.5 / 0.75 / all, mean ± std over seeds 0-2:
  CDT, cdf input      0.195 ± 0.096 / 0.298 ± 0.077 / 0.238 ± 0.058 / 0.244 ± 0.054 (per seed all: 0.265 / 0.169 /
                      0.297)
  DT                  0.411 ± 0.031 / 0.524 ± 0.114 / 0.307 ± 0.049 / 0.414 ± 0.022 (0.383 / 0.424 / 0.435)
CDT is below DT by more than the larger seed std at every weight and on every seed. Both stand when asked (0.01 ±
0.00 m/s); forward targets (1.14 m/s): CDT 1.08 ± 0.01, DT 1.11 ± 0.01. The mode table (bands below 0.38 m/s /
between / above 0.76 m/s): at w = 0.25 the target 0.83 / 0.03 / 0.14, CDT 0.89 / 0.03 / 0.09, DT 0.65 / 0.06 / 0.29;
at w = 0.5 the target 0.66 / 0.05 / 0.29, CDT 0.48 / 0.08 / 0.44, DT 0.35 / 0.10 / 0.55; at w = 0.75 the target 0.49
/ 0.08 / 0.43, CDT 0.36 / 0.10 / 0.54, DT 0.30 / 0.11 / 0.59: both run too much at w >= 0.5, DT more.
Seeds 0-5 trained together on that data (`--seeds=0,1,2,3,4,5 --data_root=workdirs/demo/data
--workdir=workdirs/paper/gdt_bimodal_demo_6seeds`, ~13 min; six seeds in one vmap compute slightly differently from
three): all mixtures CDT 0.290 ± 0.073 (0.241 / 0.199 / 0.273 / 0.366 / 0.409 / 0.252), DT 0.398 ± 0.087 (0.411 /
0.497 / 0.370 / 0.515 / 0.277 / 0.316), CDT lower on 5 of 6 seeds. On other data, made by XLA's other CPU emitters
(`SEQRL_NO_XLA_DEFAULTS=1` in front of that command with `--data_root=workdirs/paper/demo_noxla_data
--workdir=workdirs/paper/demo_noxla6`, 19m21s from nothing; forward expert return 1271, targets 1.53 m/s), the two
were level: all mixtures CDT 0.347 ± 0.061 (0.357 / 0.367 / 0.321 / 0.374 / 0.232 / 0.430), DT 0.324 ± 0.063 (0.285 /
0.286 / 0.265 / 0.351 / 0.451 / 0.307); both divided their steps near the target's proportions (w = 0.5: target 0.60
/ 0.04 / 0.36, CDT 0.59 / 0.11 / 0.30, DT 0.65 / 0.10 / 0.26) and ran slower than the forward targets (CDT 1.35 ±
0.06, DT 1.27 ± 0.11 m/s), which dominates their W1. With other data seeds (`--data_seed=N
--data_root=workdirs/paper/demo_dsN_data --workdir=workdirs/paper/demo_dsN --seeds=0,1,2,3,4,5`, 18m54s and 16m30s
from nothing): data seed 1 (forward expert 1.72 m/s) CDT 0.287 ± 0.166, DT 0.290 ± 0.064 (CDT lower on 3 of 6 seeds;
CDT jogged when asked to stand on one seed, 0.12 ± 0.21 m/s); data seed 2 (1.14 m/s) CDT 0.412 ± 0.065, DT 0.400 ±
0.107 (2 of 6). Over the four datasets CDT is lower on 12 of 24 (dataset, seed) pairs: the demo's verdict is its
default data's, not the method's.

`demo_twin`, 2026-12-04, on the demo's data of the two clones above (`python -m launch.paper --experiment=gdt_bimodal
--scale=demo_twin --vmap_seeds --data_root=workdirs/demo/data --workdir=<its own>` after `make demo`; 9m14s on 2
idle cores): CDT does not use what DT cannot see. Mean ± std over seeds 0-2 (4 twins per seed, the targets' gap
0.373, so the bound is 0.186):
  CDT   middle forward targets 0.526 ± 0.228, their twins 0.507 ± 0.199, pair mean 0.517 ± 0.201, rollouts' gap 0.249
  DT    middle forward targets 0.526 ± 0.194, their twins 0.346 ± 0.130, pair mean 0.436 ± 0.087, rollouts' gap 0.350
Neither model has a medium gait at this budget: on the 0.65 m/s middle targets CDT's episodes stand (0.01 m/s) or
run at the expert's speed (0.9-1.2 m/s), seed by seed, so neither is near the bound; DT's rollouts differ between a
target and its twin by the reset noise alone, which flips whole episodes between standing and running.

`demo` with 50 switching episodes (until commit d80c907; `git checkout 59eb842` runs it), 2026-12-03, host B
(`python -m launch.paper --experiment=gdt_bimodal --scale=demo --vmap_seeds --data_root=workdirs/paper/demo_data
--workdir=workdirs/paper/gdt_bimodal_demo`; training and evaluation 18m47s beside two other jobs) and two fresh
clones' `make demo` there (23m23s and 19m08s) and two here on 2026-12-04 (10m56s with a cold compile cache, 11m06s):
the same table every time (per_seed.csv byte for byte within each machine); w = 0.25 / 0.5 / 0.75 / all, seeds 0-2:
  CDT, cdf input      0.207 ± 0.038 / 0.277 ± 0.033 / 0.176 ± 0.037 / 0.220 ± 0.026 (per seed all: 0.257 / 0.203 /
                      0.201)
  DT                  0.301 ± 0.027 / 0.274 ± 0.063 / 0.224 ± 0.073 / 0.267 ± 0.041 (0.229 / 0.247 / 0.324)
but seeds 3-5 on the same data (`--seeds=3,4,5 --data_root=workdirs/demo/data`, 7m21s) reversed it: CDT 0.327 ±
0.070 (0.235 / 0.403 / 0.343), DT 0.235 ± 0.037 (0.281 / 0.234 / 0.190); over the 6 seeds level (CDT 0.274 ± 0.075,
DT 0.251 ± 0.042). There DT stood through most low-w mixtures (w = 0.25: 0.96 / 0.02 / 0.02 of its steps, the target
0.83 / 0.03 / 0.14); with 150 switching episodes it switches to running in them and runs too long, while CDT's W1
stayed about where it was: the demo's margin comes from DT following the data's split.
The measurements below (uniform starts, the variants) had 50 switching episodes: `git checkout 59eb842` runs them.

`demo` with uniform window starts (the demo until 2026-12-03: the command above plus
`--set=train.episode_start_fraction=0`, in a --workdir of its own), host B, from two fresh clones (2 idle cores, cold
caches), both the same per_seed.csv byte for byte; nearest-mass closed loop, w = 0.25 / 0.5 / 0.75 / all:
  CDT, cdf input      0.203 ± 0.028 / 0.270 ± 0.073 / 0.191 ± 0.011 / 0.222 ± 0.014 (per seed all: 0.235 / 0.227 /
                      0.203)
  DT                  0.191 ± 0.026 / 0.333 ± 0.066 / 0.198 ± 0.013 / 0.241 ± 0.031 (0.284 / 0.223 / 0.215)
CDT is below DT over all mixtures on 2 of 3 seeds (level on seed 1), by less than the seed std; asked to stand, CDT
stands (0.02 ± 0.01 m/s), DT jogs a little (0.12 ± 0.05); forward targets (1.14 m/s): CDT 1.00 ± 0.03, DT 1.03 ±
0.06. The mode table (summary.md; bands below 0.38 m/s / between / above 0.76 m/s): at w = 0.5 the target puts 0.66
/ 0.05 / 0.29 of its mass in the bands, CDT's steps 0.72 / 0.05 / 0.22, DT's 0.47 / 0.09 / 0.44; at w = 0.75 the
target 0.49 / 0.08 / 0.43, CDT 0.48 / 0.09 / 0.42, DT 0.35 / 0.11 / 0.54: CDT divides its steps between the modes in
nearly the target's proportions where DT runs too much, and both hold both modes within most episodes at w >= 0.5
(CDT 16 and 31 of 36, DT 31 and 36); CDT's lead in W1 stays small because it runs slower than the forward targets.
The same table to three decimals came from `python -m launch.paper --experiment=gdt_bimodal --scale=demo
--vmap_seeds --data_root=workdirs/paper/demo_data --set=train.episode_start_fraction=0
--workdir=workdirs/paper/gdt_bimodal_demo_uniform` on 2026-12-03 (data made from nothing by the context-10 variant
below); its training and evaluation took 11m47s on 2 quiet cores.
Wall time: the first clone 32m29s (data 12m05s, of which the halfcheetah PPO run 6m41s and the standing one 3m54s
before it stopped at the 20,480 steps it selects; CDT 10m33s, DT 9m01s, ~3.7 min of each the evaluation), the second
30m56s with its install (data 11m08s, CDT 7m09s, DT 11m41s): this host's speed varies by half between identical runs.
Variants of it on the demo's data (`python -m launch.paper --experiment=gdt_bimodal --scale=demo --vmap_seeds
--data_root=workdirs/demo/data --set=train.episode_start_fraction=0 --workdir=<its own>` after `make demo`, plus):
  --set=context_length=10            ~1.6x fewer seconds per step (3 seeds at 18.8 / 25.2 steps/s for CDT / DT
                                     against 13.2 / 14.5 with K = 20, the same hour; 13m27s from nothing with a
                                     warm compile cache, data 5m03s of it), but DT
                                     comes out ahead: all mixtures CDT 0.237 ± 0.071 (0.138 / 0.302 / 0.270), DT
                                     0.184 ± 0.040 (0.230 / 0.134 / 0.188)
  --runs=cdt --set=model.histogram_input=density   CDT does not stand when asked (0.53 ± 0.15 m/s) and runs too much
                                     in the mixtures: all mixtures 0.445 ± 0.140 (w = 0.25 / 0.5 / 0.75: 0.661 /
                                     0.430 / 0.245), hence the demo's cumulative-sum input (6m37s)
`demo_nodrop` with uniform starts (the variants' command with --scale=demo_nodrop and no further --set; CDT 8m41s,
DT ~9 min): all mixtures CDT 0.184 ± 0.010, DT 0.194 ± 0.048 (DT lower on 2 of 3 seeds); without dropout both
match the mixtures better at 3000 steps and stay level; the step is not faster.

`demo_reverse`, 2026-12-04, 2 idle cores, on the demo's data with a backward runner and its switching episodes added
(`python -m launch.paper --experiment=gdt_bimodal --scale=demo_reverse --vmap_seeds --data_root=<root>
--workdir=<its own>` [--data_seed=N]; ~10 min each on top of the demo's data, the backward PPO run included, whose
mode starts moving after ~250-300k steps: -1.12 / -0.95 / -1.27 m/s on data seeds 0 / 1 / 2). Twin pair means,
mean ± std over seeds 0-2 (4 twins per seed; a policy that acts alike on a standing target and its twin scores at
least the bound in expectation):
  data seed 0   CDT 0.590 ± 0.045 (0.628 / 0.526 / 0.617), DT 0.673 ± 0.038 (0.620 / 0.691 / 0.708), bound 0.654
  data seed 1   CDT 1.134 ± 0.271 (0.775 / 1.196 / 1.431), DT 0.738 ± 0.133 (0.738 / 0.901 / 0.575), bound 0.707
  data seed 2   CDT 0.793 ± 0.224 (0.846 / 1.037 / 0.496), DT 0.976 ± 0.087 (1.080 / 0.981 / 0.868), bound 0.731
CDT is below DT by more than the seed std and below the bound on data seed 0 only. Neither model reverses direction
within an episode (CDT runs one way through most twin episodes: W1 ~0.9-1.1 against a gap of ~1.3-1.5, still closer
than standing); what decides the pair mean is whether a model stands when asked to, and at 3000 steps CDT does not on
data seeds 1 and 2 (its references' rollouts 0.82 ± 1.13 and 0.59 ± 0.22 m/s against ~0), nor does DT on data seed
2 (0.55 ± 0.40 m/s).
DT's seed 2 on data seed 1 (0.575) is below the bound: the bound holds in expectation, and a reference and its twin
are rolled out from different resets, which flip whole episodes of a bistable policy.
With 6000 training steps (the same commands plus `--set=train.num_steps=6000`, a --workdir of its own; ~6.5 min per
method with the data there), pair means:
  data seed 0   CDT 0.501 ± 0.057 (0.550 / 0.422 / 0.532), DT 0.778 ± 0.016 (0.798 / 0.759 / 0.777), bound 0.654
  data seed 1   CDT 1.130 ± 0.299 (1.215 / 0.729 / 1.446), DT 0.824 ± 0.146 (0.636 / 0.842 / 0.993), bound 0.707
  data seed 2   CDT 0.473 ± 0.130 (0.655 / 0.409 / 0.357), DT 0.999 ± 0.261 (1.034 / 1.300 / 0.663), bound 0.731
On data seeds 0 and 2 CDT stands when asked (its references' rollouts -0.10 to 0.07 m/s), runs one way through most
twin episodes (on data seed 2 some episodes run forward, then slow down or turn back; one seed runs different ways in
different episodes: twin W1 0.16 to 1.07) and is below the bound on every seed and below DT by more than the seed
std; on data seed 1 it runs when asked to stand on every seed (0.84 / -0.64 / 1.84 m/s) and is above DT. Not for
want of listening: `python -m experiments.conditioning_sensitivity` (8 standing-expert trajectories, z_t swapped with
the forward expert's; seeds 0 and 2) moves its step-0 action by 0.93 / 1.07 there (0.73 / 0.63 on data seed 0), but it
misses the standing expert's own actions by 0.21 / 0.24 at step 0 and 0.17-0.20 at step 5 (0.10-0.12 and 0.05-0.06
on data seed 0), drifts out of the standing states and runs. On data
seed 3 (`--data_seed=3 --set=train.num_steps=6000`, 17m18s from nothing, data 4m46s) the backward PPO run's mode
never moved within 368,640 steps (-0.01 m/s), so the twins are nearly the standing targets (bound 0.010) and both
score 0.012 ± 0.000: no verdict. So the twins show the effect on 2 of 4 datasets at 6000 steps, which with the
backward PPO run is beyond the demo's 10 minutes; hence the scripted pair of `demo` (above).

`quick_reverse`, host A, 2026-12-02 (`python -m launch.paper --experiment=gdt_bimodal --scale=quick_reverse
--vmap_seeds`, 28m32s on 2 idle cores, 5 min of it the backward PPO run and its data: mode return -458, x-velocity
-1.31 m/s), closed loop, w = 0.25 / 0.5 / 0.75 / all: CDT 0.498 ± 0.098 / 1.245 ± 0.052 / 0.616 ± 0.004 /
0.786 ± 0.035, DT 0.697 ± 0.024 / 1.269 ± 0.094 / 0.589 ± 0.056 / 0.852 ± 0.044 (open loop all: CDT 0.871 ± 0.028,
DT 0.865 ± 0.042). Neither model matches a forward/backward mixture: neither switches direction within an episode
(bimodal_closed_loop.png: at w = 0.5 and 0.75 both run forward all episode; at 0.25 CDT runs backward all episode,
DT stands half the time, the standing cheetah whose future sum the mixture shares). Held-out backward targets: CDT
-1.31 ± 0.01 m/s, DT -1.25 ± 0.10 (targets -1.31).

`quick_no_switch`, host A, 2026-12-02 (15m33s, data there), open loop (closed loop within 0.02), w = 0.25 / 0.5 /
0.75: CDT 0.745 ± 0.330 / 0.599 ± 0.090 / 0.293 ± 0.013, DT 0.545 ± 0.259 / 0.663 ± 0.014 / 0.302 ± 0.011: both
ran whole episodes given a mixture; on the standing targets DT stood (0.03 ± 0.04 m/s), CDT's seeds -0.002, 0.31,
1.17 m/s.

The paper's second behaviour is a backflipping cheetah (cheetah_backflip, its reward pays the backward pitch rate).
In the quick PPO budget it does not flip: the 1M-step quick run's sampled-action evaluation return went from -265
(random) to -52 at 287k steps and -14 ± 14 at 717k (where it was stopped), i.e. it learnt to move its legs less, not
to rotate (measured before commit f8128f5, XLA's CPU emitters; `SEQRL_NO_XLA_DEFAULTS=1` in front of the command
reproduces it, BUILD.md "XLA flags and numerics"). Hence the standing cheetah at the quick scale.
"""

from __future__ import annotations

import os

import numpy as np

from experiments.paper import EXPERIMENTS, DataJob, Evaluation, Experiment, Plan, RunJob, common
from experiments.paper.gdt_smm import QUICK_STEPS, data_job

FORWARD, BACKFLIP, STAND_ENV = "halfcheetah", "cheetah_backflip", "cheetah_vel"
# the scripted pair (gdt.data.scripted): zero mean x-velocity, narrow vs spread
STAND_SCRIPT, ROCK_SCRIPT = "stand", "rock"
WEIGHTS = (0.25, 0.5, 0.75)  # of the forward part
METHODS = {"CDT": "cdt", "DT": "dt"}
SEEDS = (0, 1, 2)
# Closed-loop schedules (gdt.evaluate.SCHEDULES): CDT's histogram minus what was achieved bin by bin, or with each
# achieved step using up the nearest target mass (DT's future sum is updated alike by both).
SCHEDULES = ("closed_loop", "closed_loop_nearest")

# QUICK_STEPS (gdt_smm's 6000): at 2000 CDT ignored its conditioning on regenerated quick data (asked to stand, it
# ran at 1.17 m/s).
QUICK = ("model.embed_dim=64", "model.num_layers=2", "train.batch_size=32", "train.steps_per_call=250",
         "train.warmup_steps=600", "train.learning_rate=3e-4", "train.checkpoint_every=1000",
         "eval.episodes_per_target=4", "eval.best_k=3", "eval.middle_k=2")
# quick_start's train.episode_start_fraction: the uniform start puts 1/1000 of the windows at a cheetah's first step,
# where whether it runs or stands is settled (module docstring).
START = 0.25
FULL_STEPS = 100_000
FULL = ("eval.episodes_per_target=20",)


def backflip_job(preset: str) -> DataJob:
  """cheetah_backflip's expert level at a data preset (the other levels are not used here)."""
  return DataJob(f"{BACKFLIP}_{preset}_expert", f"experiments/configs/data.py:env={BACKFLIP},preset={preset}",
                 overrides=("levels=expert",))


# 20 PPO updates of 10,240 env steps, evaluated every 2: standing still is learnt long before running is.
STAND_QUICK_TIMESTEPS = 204_800
# The demo's: the first 2 updates, the snapshot the 204,800-step run selected at the demo preset (2026-12-03: mode
# returns -42 at 0 steps, -35 at 20,480, -38 to -67 after): the same arrays in 2m29s instead of 3m54s (compiles
# are most of what is left).
STAND_DEMO_TIMESTEPS = 20_480
# The behaviour policy acts with its mode: PPO's sampling noise (std ~0.7 at the start) would make the "standing"
# data flail around x-velocity 0 as the random level does; the best snapshot by mode return is an early one.
STAND = ("levels=expert", "env_kwargs.target_velocity=0.0", "policy=deterministic")
SMALL_BUDGET = {"quick": (f"ppo.num_timesteps={STAND_QUICK_TIMESTEPS}", "ppo.num_evals=11"),
                "demo": (f"ppo.num_timesteps={STAND_DEMO_TIMESTEPS}", "ppo.num_evals=2")}


def stand_overrides(preset: str) -> tuple[str, ...]:
  return STAND + SMALL_BUDGET.get(preset, ())


def stand_job(preset: str) -> DataJob:
  """A cheetah that stands still (cheetah_vel with target_velocity 0): its x-velocity is a narrow mode at 0."""
  return DataJob(f"cheetah_vel_stand_{preset}_expert", f"experiments/configs/data.py:env=cheetah_vel,preset={preset}",
                 overrides=stand_overrides(preset))


def _config_args(job: DataJob) -> dict[str, str]:
  """The 'key=value' arguments after the config file's ':'."""
  _, _, args = job.config.partition(":")
  return dict(a.split("=", 1) for a in args.split(",") if a)


def second_env(job: DataJob) -> str:
  """The env a data job's trajectories play in (a switching job's: its first source's)."""
  args = _config_args(job)
  return args["env"] if "env" in args else args["first"].split("@")[0]


def dataset_level(job: DataJob) -> str:
  """The level of the dataset the mixtures read from a job: a scripted job's behaviour, else its expert."""
  return _config_args(job)["behaviour"] if job.generator == "scripted" else "expert"


def scripted_job(behaviour: str) -> DataJob:
  """`gdt.data.scripted`'s behaviour in halfcheetah, 50 episodes (the demo preset's transitions per level)."""
  return DataJob(f"{FORWARD}_{behaviour}_scripted", f"experiments/configs/scripted_data.py:env={FORWARD},"
                 f"behaviour={behaviour}", generator="scripted")


def job_task(job: DataJob) -> str:
  """The task label (`gdt.data.task_label`: env and its options) of the trajectories a data.py job writes."""
  from gdt.data.trajectories import task_label  # noqa: PLC0415
  from launch.paper import data_config  # noqa: PLC0415  (the driver resolves job configs; it imports this package)
  config = data_config(job)
  if job.generator == "scripted":
    from gdt.data.scripted import task_name  # noqa: PLC0415
    return task_name(config.env, config.behaviour)
  return task_label(config.env, config.env_kwargs.to_dict())


# cheetah_vel tracking -1.5 m/s, 60 PPO updates of 10,240 env steps (the forward quick expert's budget). The demo's
# tracks -5 m/s, beyond its reach, so its reward rises with backward speed as halfcheetah's does with forward speed:
# within the demo preset's 368,640 PPO steps its mode runs backward (-1.1 m/s with data seed 0, whose mode returns
# stayed at standing's until 276,480 steps).
BACK_VELOCITY, BACK_QUICK_TIMESTEPS, BACK_DEMO_VELOCITY = -1.5, 614_400, -5.0


def back_job(preset: str) -> DataJob:
  """A cheetah running backwards (cheetah_vel with target_velocity BACK_VELOCITY, BACK_DEMO_VELOCITY at the demo
  preset), data played with the policy's mode: with forward running, a mixture whose future sum a standing cheetah
  also has."""
  budget = (f"ppo.num_timesteps={BACK_QUICK_TIMESTEPS}",) if preset == "quick" else ()
  velocity = BACK_DEMO_VELOCITY if preset == "demo" else BACK_VELOCITY
  return DataJob(f"cheetah_vel_back_{preset}_expert", f"experiments/configs/data.py:env=cheetah_vel,preset={preset}",
                 overrides=("levels=expert", f"env_kwargs.target_velocity={velocity}", "policy=deterministic")
                 + budget)


# The demo's switching episodes (150 of 1000 steps): the only bimodal trajectories. With 50, the demo preset's
# transitions per level, seeds 3-5 reversed seeds 0-2's ordering (module docstring, "demo").
DEMO_SWITCH_TRANSITIONS = 150_000


def switch_job(preset: str, second: DataJob) -> DataJob:
  """Episodes that hand over from the forward expert to `second`'s (or the reverse) at a uniformly random step
  (`gdt.data.switching`): the only trajectories whose x-velocity has both modes."""
  forward = data_job(FORWARD, preset)
  if second.generator == "scripted":  # played by the switching job itself: it needs no data of the scripted job
    tag, source, needs = f"{dataset_level(second)}_scripted", f"scripted:{dataset_level(second)}", (forward.name,)
  else:
    tag = second.name.split("_")[2]  # cheetah_vel_<tag>_<preset>_expert
    source, needs = f"{second_env(second)}@../{second.name}", (forward.name, second.name)
  return DataJob(f"{FORWARD}_{tag}_switch_{preset}",
                 f"experiments/configs/switch_data.py:first={FORWARD}@../{forward.name},second={source}"
                 + (f",transitions={DEMO_SWITCH_TRANSITIONS}" if preset == "demo" else ""),
                 generator="behaviour_switch", needs=needs)


def bimodal_plan(preset: str, second: DataJob, steps: int, overrides: tuple[str, ...], episodes: int, targets: str,
                 model: str, switching: bool = False, others: tuple[tuple[DataJob, str], ...] = (),
                 histogram_input: str = "probability", schedules: tuple[str, ...] = ("open_loop",) + SCHEDULES,
                 synthetic: str = "mixture", twin_reference: DataJob | None = None) -> Plan:
  """Forward + `second` (the mixtures' two parts); `switching`: plus the episodes switching between them
  (`switch_job`); `others`: (data job, level) of further training data; `histogram_input`: CDT's
  `model.histogram_input`; `schedules`: the evaluations' `eval.schedule`s, the first the run's own, the others
  extra evaluations of its last checkpoint; `synthetic`: 'mixture' (one per weight of WEIGHTS and pair of held-out
  targets) or 'twin' (`gdt.targets.twin_targets`: the mixture with a middle target's mean, of the forward task or,
  given `twin_reference` (a data job among `others`), of that job's task)."""
  forward = data_job(FORWARD, preset)
  env = second_env(second)
  # the second job first: the mixtures mix the data's first two tasks (the forward one, then this)
  extra = (f"{env}:{dataset_level(second)}@../{second.name}",)  # data workdirs are siblings under the data root
  data = (forward, second)
  for job, level in others:
    extra += (f"{second_env(job)}:{level}" + ("" if job == forward else f"@../{job.name}"),)
    data += () if job in data else (job,)
  if switching:
    switch = switch_job(preset, second)
    extra += (f"{FORWARD}:switch@../{switch.name}",)
    data += (switch,)
  weights = ("eval.mixture_weights=" + ",".join(map(str, WEIGHTS)),) if synthetic == "mixture" else ()
  reference = FORWARD
  if twin_reference is not None:
    if twin_reference not in data:
      raise ValueError(f"twin_reference {twin_reference.name!r} is not among the plan's data jobs")
    reference = job_task(twin_reference)
    weights += (f"eval.twin_task={reference}",)
  shared = overrides + ("extra_datasets=" + ",".join(extra), f"eval.synthetic={synthetic}") + weights + (
      "eval.score_features=",)
  own = {"CDT": (f"model.histogram_input={histogram_input}",), "DT": ()}
  shared += (f"eval.schedule={schedules[0]}",)
  evaluations = dict(eval_name=schedules[0],
                     evaluations=tuple(Evaluation(name, (f"eval.schedule={name}",)) for name in schedules[1:]))
  runs = tuple(RunJob(
      name=f"bimodal_{config}",
      config=f"experiments/configs/{config}.py:env={FORWARD},dataset=expert,feature=x_velocity,steps={steps}",
      overrides=shared + own[method], seeds=SEEDS, data=forward.name,
      needs=tuple(job.name for job in data if job != forward), **evaluations,
      tags=common.run_tags(method=method)) for method, config in METHODS.items())
  def described(job, level):
    options = f": {', '.join(job.overrides)}" if job.overrides else ""
    return f"{level} of {second_env(job)} (job {job.name}{options})"

  data_line = f"expert of {FORWARD} (job {forward.name}) + {described(second, dataset_level(second))}"
  part = f"{dataset_level(second)} of {env}" if second.generator == "scripted" else env  # the mixtures' second part
  for job, level in others:
    data_line += f" + {described(job, level)}"
  if switching:
    data_line += (f" + switching episodes (job {switch.name}: one expert hands over to the other at a uniform random "
                  "step, a task of its own)")
  protocol = (("seeds", ", ".join(map(str, SEEDS))),
              ("data", f"{data_line}, experiments/configs/data.py preset {preset}"),
              ("targets", f"{targets} per task, held out of training, each rolled out in its task's env; "
                          + (f"mixtures w h(forward i) + (1 - w) h({part} i), w in {WEIGHTS}, rolled out in {FORWARD}"
                             if synthetic == "mixture" else
                             f"twins: for each middle {reference} target r and pair i, w h(forward best i) + (1 - w) "
                             f"h({env} best i) with r's mean x-velocity and DT conditioning, rolled out in {FORWARD}")),
              ("episodes per target", str(episodes)),
              ("checkpoint", f"the last one, step {steps}"),
              ("model", f"{model}; CDT's histogram input: {histogram_input}"),
              ("schedules", "; ".join(SCHEDULE_LINES[name] for name in schedules)),
              ("metric", "W1 between the target's 30-bin x-velocity histogram and the pooled rollout steps', bins "
                         "over the training trajectories of every task"))
  return Plan(data=data, runs=runs, protocol=protocol)


SCHEDULE_LINES = {
    "open_loop": "open_loop (trajectory targets: their own z_t at step t; mixtures: CDT p* at every step, DT the "
                 "expected future sum)",
    "closed_loop": "closed_loop (updated from what was achieved: DT's sum minus the achieved sum, CDT's T p* minus "
                   "the achieved counts bin by bin)",
    "closed_loop_nearest": "closed_loop_nearest (as closed_loop, but each achieved step uses up CDT's target mass in "
                           "the nearest bin that has some left)"}
QUICK_MODEL = "embed 64, 2 layers, 1 head, batch 32, lr 3e-4 (CPU-sized)"


def _quick_pair(start: bool, histogram_input: str) -> Plan:
  """Forward + standing cheetahs, their switching episodes and forward medium at the quick scale; `start`: a quarter
  of the training windows from the episode's first step (both methods)."""
  overrides, model = QUICK, QUICK_MODEL
  if start:
    overrides = QUICK + (f"train.episode_start_fraction={START}",)
    model = f"{QUICK_MODEL}, a quarter of the windows from step 0"
  return bimodal_plan("quick", stand_job("quick"), QUICK_STEPS, overrides, 4, "3 best + 2 middle", model,
                      switching=True, others=((data_job(FORWARD, "quick"), "medium"),), histogram_input=histogram_input)


def quick() -> Plan:
  """Windows from step 0 and CDT's histogram as its cumulative sum (module docstring)."""
  return _quick_pair(start=True, histogram_input="cdf")


def quick_density() -> Plan:
  """quick with uniform window starts and CDT's histogram as densities (what quick was first)."""
  return _quick_pair(start=False, histogram_input="density")


def quick_start() -> Plan:
  """quick_density with a quarter of the training windows starting at the episode's first step, for both methods."""
  return _quick_pair(start=True, histogram_input="density")


# The demo scales: quick's recipe (windows from step 0, CDT's cdf input) on the demo data preset, the nearest-mass
# closed loop only, fewer steps and targets (module docstring, "demo").
DEMO_STEPS = 3000
DEMO = QUICK[:-3] + ("eval.episodes_per_target=4", "eval.best_k=2", "eval.middle_k=1",
                     f"train.episode_start_fraction={START}")
# demo_reverse's targets: 2 best + 2 middle per task, so each of the 2 middle standing targets gets a twin per pair.
DEMO_TWIN = QUICK[:-3] + ("eval.episodes_per_target=4", "eval.best_k=2", "eval.middle_k=2",
                          f"train.episode_start_fraction={START}")
# demo_twin's middle targets: at the lower quarter of the forward task's returns, its medium level (half of
# its trajectories), whose twins mix a running and a standing cheetah.
TWIN = ("eval.middle_k=2", "eval.middle_quantile=0.25")
DEMO_MODEL = f"{QUICK_MODEL}, a quarter of the windows from step 0"


def demo_reverse() -> Plan:
  """Forward and backward runners, their switching episodes and standing cheetahs; twins of the standing targets
  (forward/backward mixtures with mean 0, so DT's conditioning is a standing cheetah's)."""
  stand = stand_job("demo")
  return bimodal_plan("demo", back_job("demo"), DEMO_STEPS, DEMO_TWIN, 4, "2 best + 2 middle", DEMO_MODEL,
                      switching=True, others=((stand, "expert"),), histogram_input="cdf",
                      schedules=("closed_loop_nearest",), synthetic="twin", twin_reference=stand)


def demo_ppo_stand(dropout: float | None = None, twin: bool = False) -> Plan:
  """The demo until 2026-12-05: forward + PPO standing cheetahs, their switching episodes and forward medium,
  mixtures only. `dropout`: model.dropout_rate instead of the configs' 0.1 (`demo_nodrop`); `twin`: twin targets
  of the forward task's medium level instead of mixtures (`demo_twin`)."""
  overrides, model = DEMO, DEMO_MODEL
  if dropout is not None:
    overrides, model = DEMO + (f"model.dropout_rate={dropout}",), f"{DEMO_MODEL}, dropout {dropout}"
  targets = "2 best + 1 middle"
  if twin:
    overrides, targets = overrides + TWIN, "2 best + 2 middle (at the lower quarter of the returns)"
  return bimodal_plan("demo", stand_job("demo"), DEMO_STEPS, overrides, 4, targets, model, switching=True,
                      others=((data_job(FORWARD, "demo"), "medium"),), histogram_input="cdf",
                      schedules=("closed_loop_nearest",), synthetic="twin" if twin else "mixture")


def demo() -> Plan:
  """`make demo`: forward runner + scripted standing and rocking cheetahs and switching episodes between the runner
  and the standing cheetah; mixtures of forward and standing, and standing vs rocking targets (module docstring)."""
  return bimodal_plan("demo", scripted_job(STAND_SCRIPT), DEMO_STEPS, DEMO, 4, "2 best + 1 middle", DEMO_MODEL,
                      switching=True, others=((scripted_job(ROCK_SCRIPT), ROCK_SCRIPT),), histogram_input="cdf",
                      schedules=("closed_loop_nearest",))


def quick_reverse() -> Plan:
  """Forward + backward-running cheetahs and their switching episodes, plus standing ones."""
  return bimodal_plan("quick", back_job("quick"), QUICK_STEPS, QUICK, 4, "3 best + 2 middle", QUICK_MODEL,
                      switching=True, others=((stand_job("quick"), "expert"),), histogram_input="density")


def quick_no_switch() -> Plan:
  """Forward + standing cheetahs only: the quick PPO budget does not teach cheetah_backflip to flip."""
  return bimodal_plan("quick", stand_job("quick"), QUICK_STEPS, QUICK, 4, "3 best + 2 middle", QUICK_MODEL)


def quick_backflip() -> Plan:
  """The paper's pair at the quick scale: forward + cheetah_backflip (1M PPO steps)."""
  return bimodal_plan("quick", backflip_job("quick"), QUICK_STEPS, QUICK, 4, "3 best + 2 middle", QUICK_MODEL,
                      histogram_input="density")


def full() -> Plan:
  return bimodal_plan("full", backflip_job("full"), FULL_STEPS, FULL, 20, "5 best + 5 middle",
                      "embed 128, 3 layers, 1 head, batch 64, lr 1e-4 (gdt_base)")


def _aggregate(key_prefix: str):
  """The mean W1 of the evaluation's aggregate whose group starts with `key_prefix` (task labels carry options)."""
  def fn(result) -> float:
    found = [v for k, v in result.aggregates.items() if k.startswith(key_prefix)]
    return float(found[0]) if found else float("nan")
  return fn


def _second_task(prefix: str):
  """The aggregate `prefix`task=<the second task> (its label carries the env options)."""
  def fn(result) -> float:
    found = [v for k, v in result.aggregates.items() if k.startswith(f"{prefix}task=") and
             k != f"{prefix}task={FORWARD}"]
    return float(found[0]) if found else float("nan")
  return fn


# Whether a model follows its conditioning at all: the mean x-velocity its rollouts reach on each task's held-out
# targets, beside the targets' own mean.
METRICS = tuple(common.Metric(f"w1_mix{w:g}", _aggregate(f"w1_mix{w:g}")) for w in WEIGHTS) + (
    common.Metric("w1_mix", _aggregate("w1_mix")),
    common.Metric("w1_forward_targets", _aggregate(f"w1_task={FORWARD}")),
    common.Metric("w1_second_task_targets", _second_task("w1_")),
    common.Metric("x_velocity_forward_targets", _aggregate(f"mean_x_velocity_task={FORWARD}")),
    common.Metric("target_x_velocity_forward_targets", _aggregate(f"target_mean_x_velocity_task={FORWARD}")),
    common.Metric("x_velocity_second_task_targets", _second_task("mean_x_velocity_")),
    common.Metric("target_x_velocity_second_task_targets", _second_task("target_mean_x_velocity_")))


def _synthetic_twins(names: list[str]) -> tuple[list[int], list[int]]:
  """(references, twins): each twin target (`gdt.targets.twin_targets`) and the target whose mean it has."""
  twins = [j for j, n in enumerate(names) if n.startswith("twin_")]
  return [names.index(names[j].split("_", 2)[2]) for j in twins], twins


def _stand_rock(names: list[str]) -> tuple[list[int], list[int]]:
  """(standing targets, rocking targets of the same rank): held-out targets of the two scripted tasks, named
  '<best|middle>_traj_<i>_<task>' by `gdt.targets.split_targets`."""
  from gdt.data.scripted import task_name  # noqa: PLC0415
  stand, rock = task_name(FORWARD, STAND_SCRIPT), task_name(FORWARD, ROCK_SCRIPT)
  pairs = [(j, n[:-len(stand)] + rock) for j, n in enumerate(names) if n.endswith(f"_{stand}")]
  pairs = [(j, names.index(r)) for j, r in pairs if r in names]
  return [j for j, _ in pairs], [k for _, k in pairs]


def pair_stats(npz: str, pick=_synthetic_twins) -> dict[str, np.ndarray]:
  """Per pair of targets `pick` finds in one evaluation's arrays (a reference and its twin: by default each synthetic
  twin and the target whose mean it has), the W1 of the reference's rollouts and of the twin's to their targets,
  between the two targets (`target_gap`: a policy that acts the same on both, as a return-conditioned one does,
  scores a pair mean of at least half of it) and between the two rollouts' histograms (`achieved_gap`: ~0 when the
  policy cannot tell them apart), the references' achieved and target mean x-velocity and how far apart the two
  targets' means are (`mean_gap`: DT's conditioning differs by that times the episode length / 1000). Empty arrays
  without pairs."""
  from gdt import hindsight, metrics  # noqa: PLC0415
  with np.load(npz) as z:
    names = [str(n) for n in z["names"]]
    target, achieved = z["target_histograms_x_velocity"], z["achieved_histograms_x_velocity"]
    centers = np.asarray(hindsight.bin_centers(z["edges_x_velocity"]))
  refs, twins = pick(names)
  w1 = lambda a, b: np.asarray(metrics.wasserstein_1d(a, b, centers), np.float64)  # noqa: E731
  return {"reference": w1(target[refs], achieved[refs]), "twin": w1(target[twins], achieved[twins]),
          "target_gap": w1(target[refs], target[twins]), "achieved_gap": w1(achieved[refs], achieved[twins]),
          "reference_mean": achieved[refs] @ centers, "reference_target_mean": target[refs] @ centers,
          "mean_gap": np.abs(target[refs] @ centers - target[twins] @ centers)}


def twin_pairs(npz: str) -> dict[str, np.ndarray]:
  """`pair_stats` of the synthetic twins and their references."""
  return pair_stats(npz, _synthetic_twins)


def stand_rock_pairs(npz: str) -> dict[str, np.ndarray]:
  """`pair_stats` of the standing and rocking held-out targets of the same rank."""
  return pair_stats(npz, _stand_rock)


# A pair table's roles -> metric names: W1 on the references, on their twins, the pair mean, the bound a policy that
# acts alike on both cannot beat (half the targets' W1 apart), the rollouts' and the targets' W1 apart, the mean
# x-velocity the references' rollouts reach and their targets', and how far apart the targets' means are.
ROLES = ("reference", "twin", "pair", "bound", "achieved_gap", "target_gap", "reference_mean",
         "reference_target_mean", "mean_gap")
TWIN_NAMES = dict(zip(ROLES, ("w1_twin_references", "w1_twins", "w1_twin_pairs", "twin_bound", "twin_achieved_gap",
                              "twin_target_gap", "x_velocity_twin_references", "target_x_velocity_twin_references",
                              "twin_mean_gap"), strict=True))
STAND_ROCK_NAMES = dict(zip(ROLES, ("w1_stand_targets", "w1_rock_targets", "w1_stand_rock_pairs", "stand_rock_bound",
                                    "stand_rock_achieved_gap", "stand_rock_target_gap", "x_velocity_stand_targets",
                                    "target_x_velocity_stand_targets", "stand_rock_mean_gap"), strict=True))
_ROLE_VALUE = {"pair": lambda p: (p["reference"] + p["twin"]) / 2, "bound": lambda p: p["target_gap"] / 2}


def pair_metrics(names: dict[str, str], pairs) -> tuple[common.Metric, ...]:
  """One metric per role (`ROLES`) of the pairs `pairs(npz)` finds: the mean over them, NaN without any."""
  def metric(role):
    value = _ROLE_VALUE.get(role, lambda p: p[role])

    def fn(result) -> float:
      p = pairs(result.npz)
      return float(np.mean(value(p))) if p["twin"].size else float("nan")
    return common.Metric(names[role], fn)
  return tuple(metric(role) for role in ROLES)


TWIN_METRICS = pair_metrics(TWIN_NAMES, twin_pairs)
STAND_ROCK_METRICS = pair_metrics(STAND_ROCK_NAMES, stand_rock_pairs)


def twin_table(cell_list, evaluation: str, names: dict[str, str] = TWIN_NAMES,
               headers: tuple[str, str, str] = ("references", "their twins", "references")) -> tuple[str, list[bool]]:
  """Markdown rows = methods: W1 on the references, their twins, the pairs' mean, the bound and how far apart each
  method's rollouts on a pair are (mean ± std over seeds); `headers` name the references, the twins and the
  references again in the last column -> (table, [CDT below DT by more than the larger seed std, CDT below the
  bound])."""
  found = {c.tags["method"]: c for c in cell_list if c.tags["evaluation"] == evaluation}
  if set(found) != set(METHODS) or np.isnan(found["CDT"].values[names["pair"]]).all():
    return "", []
  fmt = lambda c, m: "{:.3f} ± {:.3f}".format(*c.mean_std(names[m]))  # noqa: E731
  lines = [f"| method | W1 {headers[0]} | W1 {headers[1]} | pair mean | bound (half the targets' gap) "
           f"| rollouts' gap (targets' gap) | {headers[2]}: x-velocity achieved (target), histogram means |",
           "|---|---|---|---|---|---|---|"]
  for method, c in found.items():
    (am, asd), (tm, _) = c.mean_std(names["reference_mean"]), c.mean_std(names["reference_target_mean"])
    lines.append(f"| {method} | {fmt(c, 'reference')} | {fmt(c, 'twin')} | {fmt(c, 'pair')} | {fmt(c, 'bound')} | "
                 f"{fmt(c, 'achieved_gap')} ({c.mean_std(names['target_gap'])[0]:.3f}) | "
                 f"{am:.2f} ± {asd:.2f} m/s ({tm:.2f}) |")
  (cm, cs), (dm, ds) = found["CDT"].mean_std(names["pair"]), found["DT"].mean_std(names["pair"])
  bound = found["CDT"].mean_std(names["bound"])[0]
  return "\n".join(lines) + "\n", [dm - cm > max(cs, ds), cm < bound]


def weight_table(cell_list, evaluation: str) -> tuple[str, list[str]]:
  """Markdown rows = mixture weight (and all mixtures), columns = CDT, DT (mean ± std over seeds), and whether CDT
  is below DT by more than the larger seed std -> (table, verdict lines)."""
  found = {c.tags["method"]: c for c in cell_list if c.tags["evaluation"] == evaluation}
  lines = ["| mixture weight (forward) | CDT W1 | DT W1 | DT - CDT | larger seed std | CDT below by more? |",
           "|---|---|---|---|---|---|"]
  verdicts = []
  for metric in METRICS[:len(WEIGHTS) + 1]:
    label = metric.name[len("w1_mix"):] or "all mixtures"
    if "CDT" not in found or "DT" not in found:
      continue
    (cm, cs), (dm, ds) = found["CDT"].mean_std(metric.name), found["DT"].mean_std(metric.name)
    ok = dm - cm > max(cs, ds)
    lines.append(f"| {label} | {cm:.3f} ± {cs:.3f} | {dm:.3f} ± {ds:.3f} | {dm - cm:+.3f} | {max(cs, ds):.3f} | "
                 f"{'yes' if ok else 'no'} |")
    verdicts.append(ok)
  return "\n".join(lines) + "\n", verdicts


def bimodal_figure(path: str, results, evaluation: str, pair: int = 0) -> bool:
  """Target vs CDT's and DT's achieved x-velocity histograms of mixture pair `pair` at each weight, or of the first
  two middle forward targets beside their twins of pair `pair` (first seed); False when a method's evaluation or
  every such target is missing."""
  from gdt import plots  # noqa: PLC0415  (matplotlib only when a report is written)
  first = {}
  for r in sorted(results, key=lambda r: r.seed):
    if r.evaluation == evaluation:
      first.setdefault(r.run.tag["method"], r)
  if set(first) != set(METHODS):
    return False
  panels, edges = [], None
  arrays = {}
  for method, r in first.items():
    with np.load(r.npz) as z:
      arrays[method] = {k: z[k] for k in ("names", "edges_x_velocity", "target_histograms_x_velocity",
                                          "achieved_histograms_x_velocity")}
  ref = arrays["CDT"]
  names = [str(n) for n in ref["names"]]
  edges = ref["edges_x_velocity"]
  shown = [(f"mix{w:g}_{pair}", f"w = {w:g} forward (pair {pair})") for w in WEIGHTS]
  twins = [n for n in names if n.startswith(f"twin_{pair}_")]
  for twin in twins[:2]:  # a twin target beside its reference (the same mean, so DT's conditioning)
    shown += [(twin.split("_", 2)[2], f"{twin.split('_', 2)[2]}"), (twin, f"its twin (pair {pair})")]
  stand, rock = _stand_rock(names)
  for j, k in list(zip(stand, rock, strict=True))[:1]:  # the same sum, other distributions
    shown += [(names[j], names[j]), (names[k], f"{names[k]} (the same future sum)")]
  for name, label in shown:
    if name not in names:
      continue
    achieved = {}
    for method, a in arrays.items():
      j = [str(n) for n in a["names"]].index(name)
      achieved[method] = a["achieved_histograms_x_velocity"][j]
    panels.append((label, ref["target_histograms_x_velocity"][names.index(name)], achieved))
  if not panels:
    return False
  plots.method_histograms(path, edges, panels, title=f"bimodal x-velocity targets, {evaluation}, seed "
                          f"{first['CDT'].seed}", xlabel="x-velocity")
  return True


# mode_table's episode classes: more than COMMIT of the steps in the second mode's band ("stood through" for a standing
# second task), or at least BOTH in each mode's band (both modes in one episode).
COMMIT, BOTH = 0.8, 0.2


def _mode_groups(names: list[str]) -> dict[str, list[int]]:
  """mode_counts' target groups: each mixture weight's targets ('0.25', ...), the twins and their references."""
  groups = {f"{w:g}": [j for j, n in enumerate(names) if n.startswith(f"mix{w:g}_")] for w in WEIGHTS}
  twins = [j for j, n in enumerate(names) if n.startswith("twin_")]
  groups["twins"] = twins
  groups["their references"] = sorted({names.index(names[j].split("_", 2)[2]) for j in twins})
  return {label: idx for label, idx in groups.items() if idx}


def mode_counts(result) -> dict[str, dict]:
  """Per mixture weight (and for twins and their references: `_mode_groups`), from one evaluation's arrays: the band
  edges (thirds of the way from the second task's held-out target mean x-velocity to the forward task's), the
  targets' mean mass and the rollouts' share of steps in each band (second mode, between, forward mode), how many
  episodes spent more than COMMIT of their steps in the second mode's band and how many at least BOTH in each mode's
  band."""
  low, high = (_second_task("target_mean_x_velocity_")(result),
               _aggregate(f"target_mean_x_velocity_task={FORWARD}")(result))
  cuts = (low + (high - low) / 3, low + 2 * (high - low) / 3)
  with np.load(result.npz) as z:
    names, x, valid = [str(n) for n in z["names"]], z["features_x_velocity"], z["valid"]
    edges, target = z["edges_x_velocity"], z["target_histograms_x_velocity"]
  band = lambda v: np.digitize(v, cuts)  # 0 second, 1 between, 2 forward  # noqa: E731
  bin_band = band(0.5 * (edges[1:] + edges[:-1]))
  out = {}
  for label, idx in _mode_groups(names).items():
    steps = valid[idx].sum(-1)  # [pairs, episodes]
    counts = np.stack([((band(x[idx]) == b) & valid[idx]).sum(-1) for b in range(3)])  # [3, pairs, episodes]
    share = counts / np.maximum(steps, 1)
    out[label] = {"cuts": cuts, "target": [float(target[idx][:, bin_band == b].sum(-1).mean()) for b in range(3)],
                  "achieved": [float(c.sum() / steps.sum()) for c in counts],
                  "second": int((share[0] > COMMIT).sum()),
                  "both": int(((share[0] >= BOTH) & (share[2] >= BOTH)).sum()), "episodes": int(steps.size)}
  return out


def mode_table(results, evaluation: str) -> str:
  """Whether rollouts produce the two modes, within episodes or one per episode, or speeds between them: per method
  and mixture weight, the share of steps in each band (target's; achieved, mean over seeds) and the episodes (all
  seeds and pairs) in the second mode throughout or in both modes (`mode_counts`)."""
  rows = {}
  for r in sorted((r for r in results if r.evaluation == evaluation), key=lambda r: r.seed):
    for label, c in mode_counts(r).items():
      rows.setdefault((r.run.tag["method"], label), []).append(c)
  if not rows:
    return ""
  lo, hi = next(iter(rows.values()))[0]["cuts"]
  lines = [f"Bands of x-velocity: second mode below {lo:.2f} m/s, between, forward mode above {hi:.2f} m/s (thirds "
           "of the way between the two tasks' held-out target means); shares of steps as second / between / "
           f"forward. Episodes: in the second mode (more than {COMMIT:.0%} of its steps in that band), in both modes "
           f"(at least {BOTH:.0%} in each mode's band), other (the forward mode or speeds between).\n",
           "| method | targets (mixtures: w forward) | target | achieved (mean over seeds) | episodes in the second "
           "mode | in both modes | other |", "|---|---|---|---|---|---|---|"]
  for (method, label), counts in rows.items():
    achieved = np.mean([c["achieved"] for c in counts], axis=0)
    second, both, n = (sum(c[k] for c in counts) for k in ("second", "both", "episodes"))
    shares = lambda v: " / ".join(f"{x:.2f}" for x in v)  # noqa: E731
    lines.append(f"| {method} | {label} | {shares(counts[0]['target'])} | {shares(achieved)} | {second} of {n} | "
                 f"{both} of {n} | {n - second - both} of {n} |")
  return "\n".join(lines) + "\n"


def follow_table(cell_list, evaluation: str) -> str:
  """Whether each model follows its conditioning at all: the mean x-velocity of its rollouts on each task's held-out
  targets beside the targets' own (mean ± std over seeds)."""
  lines = ["| method | forward targets: achieved (target) | second task's targets: achieved (target) |",
           "|---|---|---|"]
  for c in (c for c in cell_list if c.tags["evaluation"] == evaluation):
    cells = []
    for part in ("forward", "second_task"):
      (am, asd), (tm, _) = c.mean_std(f"x_velocity_{part}_targets"), c.mean_std(f"target_x_velocity_{part}_targets")
      cells.append(f"{am:.2f} ± {asd:.2f} m/s ({tm:.2f})")
    lines.append(f"| {c.tags['method']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def report(plan, results, report_dir, scale):
  """The standard report plus, per evaluation, the W1 per mixture weight with CDT-below-DT verdicts and the
  target-vs-achieved figure; summary.md holds the protocol, those tables and whether the models follow their
  targets."""
  title = f"GDT bimodal x-velocity targets ({scale})"
  twins = any("w1_twin" in r.aggregates for r in results)
  metrics = (METRICS[len(WEIGHTS) + 1:] + TWIN_METRICS) if twins else METRICS
  from gdt.data.scripted import task_name  # noqa: PLC0415
  stand_rock = any(f"w1_task={task_name(FORWARD, ROCK_SCRIPT)}" in r.aggregates for r in results)
  metrics += STAND_ROCK_METRICS if stand_rock else ()
  paths = dict(common.standard_report(plan, results, report_dir, scale, title=title, rows=("method",),
                                      columns=("evaluation",), metrics=metrics, histogram_feature=lambda r: None))
  cell_list = common.cells(results, metrics)
  with open(paths["report_md"]) as f:
    text = [f.read()]
  expected = sum(len(r.seeds) * len(r.evaluation_names()) for r in plan.runs)
  summary = [common.protocol_header(title + ": CDT vs DT", plan, scale, cell_list, expected)]
  for evaluation in dict.fromkeys(c.tags["evaluation"] for c in cell_list):
    if twins:
      table, verdicts = twin_table(cell_list, evaluation)
      below, under_bound = verdicts or (False, False)
      section = (f"\n## Twin targets, {evaluation}: a reference target and a bimodal mixture with its mean\n\n"
                 "Each twin mixes the best forward and second-task targets of a pair so that its mean x-velocity, "
                 "and DT's conditioning, are those of a reference (a middle target of the task the protocol's "
                 "targets line names); a policy that acts alike on the two cannot score a pair mean below half "
                 "their W1 apart (the bound).\n\n"
                 f"{table}\nCDT's pair mean is below DT's by more than the larger seed std: "
                 f"{'yes' if below else 'no'}; below the bound: {'yes' if under_bound else 'no'}.\n")
    else:
      table, verdicts = weight_table(cell_list, evaluation)
      section = (f"\n## Mixture targets, {evaluation}: W1 per weight, CDT vs DT\n\n{table}\nCDT's W1 is below DT's "
                 f"by more than the seed std at {sum(verdicts)} of {len(verdicts)} rows.\n")
    if stand_rock:
      table, verdicts = twin_table(cell_list, evaluation, STAND_ROCK_NAMES,
                                   ("standing targets", "rocking targets", "standing targets"))
      below, under_bound = verdicts or (False, False)
      mean_gap = max(c.mean_std(STAND_ROCK_NAMES["mean_gap"])[0] for c in cell_list
                     if c.tags["evaluation"] == evaluation)
      section += (f"\n## Standing vs rocking targets, {evaluation}: the same future sum, other distributions\n\n"
                  "Held-out targets of the scripted standing and rocking cheetahs (`gdt.data.scripted`), paired by "
                  "rank: both have mean x-velocity ~0, so DT is told nearly the same for both (their means differ by "
                  f"{mean_gap:.3f} m/s on average, DT's input by as much), while one is a spike at 0 and the other "
                  "spreads over about -2..2 m/s; a policy that acts alike on the two cannot score a pair mean below "
                  f"half their W1 apart (the bound).\n\n{table}\nCDT's pair mean is below DT's by more than the "
                  f"larger seed std: {'yes' if below else 'no'}; below the bound: "
                  f"{'yes' if under_bound else 'no'}.\n")
    modes = mode_table(results, evaluation)
    modes = modes and f"\n### Synthetic targets, {evaluation}: one mode per episode, both, or speeds between?\n\n{modes}"
    text += [section, modes]
    summary += [section, modes, f"\n### Held-out targets, {evaluation}: mean x-velocity achieved (target's)\n\n"
                         f"{follow_table(cell_list, evaluation)}"]
    figure = os.path.join(report_dir, f"bimodal_{evaluation}.png")
    if bimodal_figure(figure, results, evaluation):
      paths[f"bimodal_{evaluation}_png"] = figure
      text.append(f"\n![bimodal {evaluation}](bimodal_{evaluation}.png)\n")
      summary.append(f"\nFigure (target vs achieved x-velocity histograms, first seed): {figure}\n")
  summary.append(f"Every metric: {paths['report_md']}\n")
  common.atomic_write_bytes(paths["report_md"], "".join(text).encode())
  paths["summary_md"] = os.path.join(report_dir, "summary.md")
  common.atomic_write_bytes(paths["summary_md"], "".join(summary).encode())
  return paths


EXPERIMENTS.register("gdt_bimodal", Experiment(
    "gdt_bimodal", "synthesized bimodal x-velocity targets: CDT vs DT on forward + standing (quick) or backflipping "
    "(full) cheetah data",
    {"demo": demo, "demo_ppo_stand": demo_ppo_stand, "demo_nodrop": lambda: demo_ppo_stand(dropout=0.0),
     "demo_twin": lambda: demo_ppo_stand(twin=True),
     "demo_reverse": demo_reverse, "quick": quick, "quick_density": quick_density,
     "quick_start": quick_start,
     "quick_reverse": quick_reverse, "quick_no_switch": quick_no_switch, "quick_backflip": quick_backflip,
     "full": full}, report))
