"""Outcome-labelled patch classifier, slide likelihood-histogram + TF-IDF features, LASSO-Cox
signature, and the signature / treatment-benefit study (seed 003; seed 000 reuses
:mod:`radiograph.signature.slide_features`).

=====================  ==================================================================
module                 what it holds
=====================  ==================================================================
``slide_features``     outcome labels of patches, the patch classifier on frozen features,
                       per-slide histogram and TF-IDF features (206 per slide)
``model``              Pearson filter, univariate Cox screening, LASSO-Cox with CV penalty,
                       the linear signature score
``study``              the study runner (``run_signature_study``) and its typed config
``report``             KM panels with numbers at risk, forest plots, risk maps
=====================  ==================================================================
"""
