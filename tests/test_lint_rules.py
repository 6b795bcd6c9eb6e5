"""Every static rule (BS9xx): the bug fires at the exact line and column, its corrected twin
stays silent."""

from __future__ import annotations

import textwrap

from babysit.check import Severity
from babysit.lint import static_selection
from babysit.report import Report, judge
from babysit.trace import Trace


def lint_text(*parts: str, path: str = "train.py", select=None) -> Report:
    """Lint the concatenation of the (each dedented) ``parts``; line 1 is the first line."""
    text = "".join(textwrap.dedent(part) for part in parts).lstrip("\n")
    compile(text, path, "exec")  # the snippet itself must be valid Python
    trace = Trace(mode="lint", target=path)
    trace.sources = [{"path": path, "text": text}]
    report = judge(trace, select=static_selection(select))
    assert not trace.errors, trace.errors  # a rule that crashes is a bug
    return report


def positions(report: Report, rule: str) -> list[tuple[int, int]]:
    return sorted(
        (f.location.line, f.location.column)
        for f in report.findings
        if (f.id == rule or f.name == rule) and f.location
    )


def loud(report: Report) -> list[str]:
    return [f"{f.location} {f.id} {f.message}" for f in report.findings if f.severity.rank >= 1]


HEADER = """
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
"""


# -- BS901 softmax-before-cross-entropy ---------------------------------------------------------
def test_softmax_through_a_variable_into_cross_entropy_module():
    report = lint_text(
        HEADER,
        """
        def step(model, x, y):
            criterion = nn.CrossEntropyLoss()
            probs = F.softmax(model(x), dim=1)
            return criterion(probs, y)
        """,
    )
    assert positions(report, "BS901") == [(9, 12)]
    [finding] = report.findings
    assert finding.severity is Severity.ERROR
    assert finding.evidence["activation_line"] == 8


def test_softmax_spellings_fire():
    report = lint_text(
        """
        import torch
        from torch.nn import CrossEntropyLoss as CE
        from torch.nn import functional as F
        import torch.nn as nn

        def step(model, x, y):
            a = F.cross_entropy(model(x).softmax(dim=1), y)
            b = CE()(torch.softmax(model(x), 1), y)
            head = nn.Softmax(dim=1)
            c = F.cross_entropy(head(model(x)), y)
            d = F.nll_loss(torch.softmax(model(x), 1), y)
            return a + b + c + d
        """
    )
    assert positions(report, "BS901") == [(7, 9), (8, 9), (10, 9), (11, 9)]


def test_model_whose_forward_returns_softmax_fires():
    report = lint_text(
        HEADER,
        """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                return torch.softmax(self.fc(x), dim=-1)

        net = Net()
        loss = F.cross_entropy(net(torch.randn(2, 4)), torch.tensor([0, 2]))
        """,
    )
    assert positions(report, "BS901") == [(15, 8)]


def test_logits_into_cross_entropy_and_log_softmax_into_nll_are_silent():
    report = lint_text(
        HEADER,
        """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                return F.log_softmax(self.fc(x), dim=-1)

        def step(model, net, x, y):
            criterion = nn.CrossEntropyLoss()
            logits = model(x)
            probs = F.softmax(logits, dim=1)  # for metrics
            loss = criterion(logits, y)
            nll = F.nll_loss(net(x), y) + nn.NLLLoss()(F.log_softmax(logits, 1), y)
            return loss + nll, probs
        """,
    )
    assert report.findings == []


def test_log_softmax_into_cross_entropy_is_only_info():
    report = lint_text(HEADER, "loss = F.cross_entropy(F.log_softmax(z, 1), y)\n")
    [finding] = report.findings
    assert finding.id == "BS901" and finding.severity is Severity.INFO


def test_a_branch_that_may_give_logits_stays_silent():
    report = lint_text(
        HEADER,
        """
        def step(model, x, y, probabilities):
            out = model(x)
            if probabilities:
                out = out.softmax(1)
            return F.cross_entropy(out, y)
        """,
    )
    assert report.findings == []


# -- BS902 sigmoid-before-bce-with-logits --------------------------------------------------------
def test_sigmoid_into_bce_with_logits_fires_and_bce_is_info():
    report = lint_text(
        HEADER,
        """
        loss_fn = nn.BCEWithLogitsLoss()
        def step(model, x, y):
            preds = torch.sigmoid(model(x)).squeeze(1)
            a = loss_fn(preds, y)
            b = F.binary_cross_entropy(preds, y)
            return a + b
        """,
    )
    assert positions(report, "BS902") == [(9, 9), (10, 9)]
    assert [f.severity for f in report.findings] == [Severity.ERROR, Severity.INFO]


def test_sigmoid_model_output_into_bce_with_logits_fires():
    report = lint_text(
        HEADER,
        """
        model = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        """,
    )
    assert positions(report, "BS902") == [(7, 8)]


def test_raw_logits_into_bce_with_logits_is_silent():
    report = lint_text(
        HEADER,
        """
        loss_fn = nn.BCEWithLogitsLoss()
        def step(model, x, y):
            logits = model(x).squeeze(1)
            loss = loss_fn(logits, y)
            preds = torch.sigmoid(logits) > 0.5
            return loss, preds
        """,
    )
    assert report.findings == []


# -- BS903 missing-zero-grad ---------------------------------------------------------------------
def test_zero_grad_only_before_the_loop_fires():
    report = lint_text(
        HEADER,
        """
        def train(model, loader):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            optimizer.zero_grad()
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
        """,
    )
    assert positions(report, "missing-zero-grad") == [(12, 9)]
    assert report.findings[0].severity is Severity.ERROR


def test_scaler_step_without_zero_grad_fires():
    report = lint_text(
        HEADER,
        """
        def train(model, loader, opt, scaler):
            for x, y in loader:
                scaler.scale(F.mse_loss(model(x), y)).backward()
                scaler.step(opt)
                scaler.update()
        """,
    )
    assert positions(report, "BS903") == [(9, 9)]


def test_zero_grad_variants_are_silent():
    report = lint_text(
        HEADER,
        """
        def reset(model):
            model.zero_grad()

        def accumulate(model, loader, opt, k=4):
            for i, (x, y) in enumerate(loader):
                (F.mse_loss(model(x), y) / k).backward()
                if (i + 1) % k == 0:
                    opt.step()
                    opt.zero_grad()

        def at_end(model, loader, opt):
            for x, y in loader:
                F.mse_loss(model(x), y).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        def by_hand(model, loader, opt):
            for x, y in loader:
                F.mse_loss(model(x), y).backward()
                opt.step()
                for p in model.parameters():
                    p.grad = None

        def helper(model, loader, opt):
            for x, y in loader:
                F.mse_loss(model(x), y).backward()
                opt.step()
                reset(model)

        def scheduler_only(model, loader, scheduler):
            for x, y in loader:
                F.mse_loss(model(x), y).backward()
                scheduler.step()
        """,
    )
    assert report.findings == []


# -- BS904 missing-eval-mode ---------------------------------------------------------------------
def test_validation_loop_without_eval_fires():
    report = lint_text(
        HEADER,
        """
        def main(val_loader):
            model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
            with torch.no_grad():
                for x, y in val_loader:
                    out = model(x)
        """,
    )
    assert positions(report, "missing-eval-mode") == [(9, 9)]
    assert "not knowable statically" in report.findings[0].message


def test_helper_called_without_eval_fires_and_with_eval_is_silent():
    bad = lint_text(
        HEADER,
        """
        def evaluate(model, loader):
            with torch.no_grad():
                return [model(x) for x, _ in loader] + [model(x) for x in loader]

        def run_eval(model, test_loader):
            total = 0.0
            with torch.no_grad():
                for x, y in test_loader:
                    total += F.cross_entropy(model(x), y).item()
            return total

        def main(model, test_loader):
            return run_eval(model, test_loader)
        """,
    )
    assert positions(bad, "BS904") == [(13, 9)]
    good = lint_text(
        HEADER,
        """
        def run_eval(model, test_loader):
            total = 0.0
            with torch.no_grad():
                for x, y in test_loader:
                    total += F.cross_entropy(model(x), y).item()
            return total

        def main(model, test_loader):
            model.eval()
            return run_eval(model, test_loader)
        """,
    )
    assert good.findings == []


def test_unit_tests_are_not_evaluation_loops():
    source = """
    def test_shapes():
        model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
        with torch.no_grad():
            for shape in test_shapes:
                model(torch.randn(shape))
    """
    assert lint_text(HEADER, source, path="tests/test_model.py").findings == []
    assert positions(lint_text(HEADER, source, path="shapes.py"), "BS904") == [(9, 9)]


def test_eval_before_the_loop_is_silent():
    report = lint_text(
        HEADER,
        """
        def main(val_loader):
            model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
            model.eval()
            with torch.no_grad():
                for x, y in val_loader:
                    out = model(x)
        """,
    )
    assert report.findings == []


# -- BS905 missing-train-mode --------------------------------------------------------------------
TRAIN_THEN_EVAL = """
def fit(train_loader, val_loader, epochs):
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    optimizer = torch.optim.Adam(model.parameters())
    for epoch in range(epochs):
{train_call}
        for x, y in train_loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in val_loader:
                model(x)
"""


def test_eval_in_epoch_loop_without_train_fires():
    report = lint_text(HEADER, TRAIN_THEN_EVAL.format(train_call="        pass"))
    assert positions(report, "missing-train-mode") == [(15, 9)]


def test_train_at_the_start_of_each_epoch_is_silent():
    report = lint_text(HEADER, TRAIN_THEN_EVAL.format(train_call="        model.train()"))
    assert report.findings == []


def test_eval_helper_without_restoring_train_fires_and_a_frozen_teacher_is_silent():
    report = lint_text(
        HEADER,
        """
        def validate(net, loader):
            net.eval()
            with torch.no_grad():
                return sum(float(net(x).sum()) for x, _ in loader)

        def fit(student, teacher, train_loader, val_loader, optimizer):
            for epoch in range(10):
                teacher.eval()
                for x, y in train_loader:
                    optimizer.zero_grad()
                    F.mse_loss(student(x), teacher(x).detach()).backward()
                    optimizer.step()
                validate(student, val_loader)
        """,
    )
    assert positions(report, "BS905") == [(18, 9)]
    assert report.findings[0].evidence["model"] == "student"


# -- BS906 missing-no-grad-in-eval ---------------------------------------------------------------
def test_eval_loop_without_no_grad_fires():
    report = lint_text(
        HEADER,
        """
        def evaluate(model, val_loader):
            model.eval()
            correct = 0
            for x, y in val_loader:
                correct += (model(x).argmax(1) == y).sum().item()
            return correct
        """,
    )
    assert positions(report, "missing-no-grad-in-eval") == [(10, 21)]


def test_no_grad_decorator_block_or_caller_is_silent():
    report = lint_text(
        HEADER,
        """
        @torch.no_grad()
        def evaluate(model, val_loader):
            model.eval()
            return [model(x) for x, y in val_loader]

        @torch.inference_mode()
        def test_accuracy(model, test_loader):
            model.eval()
            for x, y in test_loader:
                model(x)

        def validate(model, val_loader):
            model.eval()
            for x, y in val_loader:
                with torch.no_grad():
                    model(x)

        def val_epoch(model, val_loader):
            model.eval()
            for x, y in val_loader:
                model(x)

        def main(model, val_loader):
            with torch.no_grad():
                val_epoch(model, val_loader)

        def saliency(model, test_loader):
            model.eval()
            for x, y in test_loader:
                x.requires_grad_(True)
                model(x).sum().backward()
        """,
    )
    assert report.findings == []


# -- BS907 loss-accumulated-with-graph -----------------------------------------------------------
def test_loss_tensor_accumulated_fires():
    report = lint_text(
        HEADER,
        """
        def train(model, loader, optimizer, criterion):
            running_loss = 0.0
            losses = []
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                running_loss += loss
                losses.append(loss)
                running_loss = running_loss + loss * x.size(0)
            return running_loss
        """,
    )
    assert positions(report, "loss-accumulated-with-graph") == [(14, 9), (15, 9), (16, 9)]


def test_item_detach_and_objective_sums_are_silent():
    report = lint_text(
        HEADER,
        """
        def train(model, loader, optimizer, heads):
            running_loss = 0.0
            history = []
            for x, y in loader:
                optimizer.zero_grad()
                total = 0
                for head in heads:
                    total = total + F.cross_entropy(head(model(x)), y)
                total.backward()
                optimizer.step()
                running_loss += total.item()
                history.append(total.detach())
            return running_loss, history
        """,
    )
    assert report.findings == []


# -- BS908 train-loader-not-shuffled / BS909 eval-loader-shuffled --------------------------------
def test_unshuffled_train_loader_fires_and_shuffled_val_loader_is_info():
    report = lint_text(
        HEADER,
        """
        ds = TensorDataset(torch.randn(10, 3), torch.randn(10, 1))
        train_loader = DataLoader(ds, batch_size=2)
        val_loader = DataLoader(ds, batch_size=5, shuffle=True)
        """,
    )
    assert positions(report, "train-loader-not-shuffled") == [(7, 16)]
    assert positions(report, "eval-loader-shuffled") == [(8, 14)]
    assert {f.id: f.severity for f in report.findings} == {
        "BS908": Severity.WARNING,
        "BS909": Severity.INFO,
    }


def test_loader_iterated_by_training_loop_fires_by_usage():
    report = lint_text(
        HEADER,
        """
        def main(model, opt):
            loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4, shuffle=False)
            for (x,) in loader:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()
        """,
    )
    assert positions(report, "BS908") == [(7, 14)]


def test_shuffled_sampled_or_unknown_loaders_are_silent():
    report = lint_text(
        HEADER,
        """
        from torch.utils.data import IterableDataset

        class Stream(IterableDataset):
            def __iter__(self):
                yield from range(10)

        ds = TensorDataset(torch.randn(10, 3))
        train_loader = DataLoader(ds, batch_size=2, shuffle=True)
        train_loader2 = DataLoader(ds, batch_size=2, sampler=torch.utils.data.RandomSampler(ds))
        train_stream = DataLoader(Stream(), batch_size=2)
        train_flagged = DataLoader(ds, batch_size=2, shuffle=args.shuffle)
        val_loader = DataLoader(ds, batch_size=5)
        """,
    )
    assert report.findings == []


# -- BS910 weight-decay-on-norm-and-bias ---------------------------------------------------------
def test_weight_decay_over_all_parameters_is_info():
    report = lint_text(
        HEADER,
        """
        model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        """,
    )
    assert positions(report, "weight-decay-on-norm-and-bias") == [(7, 7)]
    assert report.findings[0].severity is Severity.INFO


def test_param_groups_or_no_decay_are_silent():
    report = lint_text(
        HEADER,
        """
        model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
        decay = [p for p in model.parameters() if p.ndim >= 2]
        rest = [p for p in model.parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay}, {"params": rest, "weight_decay": 0.0}])
        sgd = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0)
        """,
    )
    assert report.findings == []


# -- suppressions, columns ------------------------------------------------------------------------
def test_inline_suppression_by_id_name_or_bare():
    source = """
    probs = F.softmax(z, 1)
    a = F.cross_entropy(probs, y)  # babysit: ignore[BS901]
    b = F.cross_entropy(probs, y)  # babysit: ignore[BS903,softmax-before-cross-entropy]
    c = F.cross_entropy(probs, y)  # babysit: ignore
    d = F.cross_entropy(probs, y)  # babysit: ignore[BS903]
    e = F.cross_entropy(probs, "# babysit: ignore")  # (in a string: does not count)
    """
    report = lint_text(HEADER, source)
    assert positions(report, "BS901") == [(10, 5), (11, 5)]


def test_column_counts_characters_not_bytes():
    report = lint_text(HEADER, 'label = "é"; loss = F.cross_entropy(F.softmax(z, 1), y)\n')
    assert positions(report, "BS901") == [(5, 21)]
