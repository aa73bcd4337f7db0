"""Looking inside a trained net (§6.1): Figure 3's kernels (kernels.py), Figure 4's top-5 panel
(predictions.py) and nearest neighbours in the last hidden layer (features.py), binary codes for
retrieval (codes.py, retrieval.py), the HTML run report (report.py) checked in a headless browser
(browser.py), TensorBoard images during training (tensorboard.py), and result files (results.py)."""
