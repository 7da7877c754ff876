"""Built-in plugin: the CUT / FastCUT (Park et al. 2020) and CycleGAN (Zhu et al. 2017)
baselines."""
