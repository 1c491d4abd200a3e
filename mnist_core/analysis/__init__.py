"""The analysis wing: cached evaluations, saliency, inside views, run comparisons."""
