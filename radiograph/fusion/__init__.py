"""Multi-modal classification (seeds/000): typed clinical table (``clinical``), the
leakage-free feature-selection chain (``selection``), multi-sequence MRI habitat features
(``habitat_features``), multi-head-attention fusion (``mha``), stacking ensembles
(``stacking``) and centre-held-out designs (``designs``). Import the submodules directly."""
