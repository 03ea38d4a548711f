"""A program written for torch.nn, in the shape of PyTorch's examples/word_language_model:
embedding -> nn.LSTM/GRU/RNN with inter-layer dropout -> linear decoder, truncated BPTT with
the hidden state detached between batches, gradient clipping, plain SGD, whole-model
torch.save / torch.load(weights_only=True) with an allow-list, flatten_parameters() after
loading, and torch.onnx.export. It knows nothing of lstmkit: the test swaps torch.nn's
recurrent classes for lstmkit's before it runs, and compares the losses with torch.nn's.

    main(rnn_type, out_dir) -> {"losses": [...], "reloaded_loss": float, "onnx": path}
"""
import math

import torch
import torch.nn as nn


class RNNModel(nn.Module):
    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ("LSTM", "GRU"):
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity="tanh", dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        return torch.log_softmax(self.decoder(self.drop(output)), dim=-1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data[:nbatch * bsz].view(bsz, -1).t().contiguous()


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


def main(rnn_type, out_dir, steps=12, seed=1111):
    torch.manual_seed(seed)
    ntoken, bptt, bsz = 50, 7, 4
    corpus = torch.randint(0, ntoken, (2000,), generator=torch.Generator().manual_seed(0))
    train_data = batchify(corpus, bsz)
    model = RNNModel(rnn_type, ntoken, 16, 24, 2, dropout=0.2)
    criterion = nn.NLLLoss()
    lr, clip, losses = 5.0, 0.25, []
    model.train()
    hidden = model.init_hidden(bsz)
    for batch, i in enumerate(range(0, steps * bptt, bptt)):
        data, targets = get_batch(train_data, i, bptt)
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output.view(-1, ntoken), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        losses.append(loss.item())
    path = f"{out_dir}/model.pt"
    with open(path, "wb") as f:
        torch.save(model, f)
    with open(path, "rb") as f, torch.serialization.safe_globals(
            [RNNModel, type(model.rnn), nn.Dropout, nn.Embedding, nn.Linear]):
        model = torch.load(f, weights_only=True)
        model.rnn.flatten_parameters()
    model.eval()
    data, targets = get_batch(train_data, 0, bptt)
    with torch.no_grad():
        output, _ = model(data, model.init_hidden(bsz))
        reloaded = criterion(output.view(-1, ntoken), targets).item()
    onnx_path = f"{out_dir}/model.onnx"
    torch.onnx.export(model, (data, model.init_hidden(bsz)), onnx_path)
    return {"losses": losses, "reloaded_loss": reloaded, "onnx": onnx_path, "ppl": math.exp(losses[-1]),
            "example": (data, model.init_hidden(bsz)), "model": model}
