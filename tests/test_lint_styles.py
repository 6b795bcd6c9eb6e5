"""Static rules on the training-code styles found in the wild: phase loops, trainer classes,
model-internal generation loops, Lightning manual optimization, Accelerate, closures. Each
bug fires at its exact position; its corrected twin stays silent."""

from __future__ import annotations

from test_lint_rules import HEADER, lint_text, loud, positions

# -- BS905 missing-train-mode: the tutorial's phase loop -----------------------------------------
PHASES = """
def train_model(model, criterion, optimizer, dataloaders):
    for epoch in range(25):
        for phase in ["train", "val"]:
{switch}
            for inputs, labels in dataloaders[phase]:
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    loss = criterion(model(inputs), labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
"""
IF_ELSE = """\
            if phase == "train":
                model.train()
            else:
                model.eval()"""
ELIF = """\
            if phase == "train":
                model.train()
            elif phase == "val":
                model.eval()"""
TWO_IFS = """\
            if phase == "train":
                model.train()
            if phase == "val":
                model.eval()"""
CONDITIONAL_EXPRESSION = """\
            model.train() if phase == "train" else model.eval()"""
FLAG = """\
            model.train(phase == "train")"""
EVAL_ONLY = """\
            if phase == "val":
                model.eval()"""


def test_the_phase_loop_of_the_pytorch_tutorial_is_silent():
    for switch in (IF_ELSE, ELIF, TWO_IFS, CONDITIONAL_EXPRESSION, FLAG):
        report = lint_text(HEADER, PHASES.format(switch=switch))
        assert loud(report) == [], switch


def test_a_phase_loop_that_never_switches_back_to_train_fires():
    report = lint_text(HEADER, PHASES.format(switch=EVAL_ONLY))
    assert positions(report, "BS905") == [(10, 17)]


def test_a_conditional_evaluation_without_train_fires_and_with_train_is_silent():
    source = """
    def fit(model, train_loader, val_loader, optimizer):
        model.train()
        for epoch in range(10):
            for x, y in train_loader:
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
            if epoch % 5 == 0:
                model.eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        model(x)
    {restore}
    """
    bad = lint_text(HEADER, source.format(restore=""))
    assert positions(bad, "BS905") == [(14, 13)]
    good = lint_text(HEADER, source.format(restore="            model.train()"))
    assert loud(good) == []


def test_train_false_in_the_epoch_loop_without_train_true_fires():
    source = """
    def run_epoch(model, loader, optimizer):
    {switch}
        for x, y in loader:
            optimizer.zero_grad()
            F.mse_loss(model(x), y).backward()
            optimizer.step()

    def main(model, train_loader, test_loader, optimizer):
        for epoch in range(20):
            run_epoch(model, train_loader, optimizer)
            model.train(False)
            with torch.no_grad():
                for x, y in test_loader:
                    model(x)
    """
    bad = lint_text(HEADER, source.format(switch="    pass"))
    assert positions(bad, "BS905") == [(16, 9)]
    good = lint_text(HEADER, source.format(switch="    model.train(mode=True)"))
    assert loud(good) == []


# -- BS904 missing-eval-mode: a model's own code, trainer classes --------------------------------
def test_a_models_own_generation_loop_is_silent():
    report = lint_text(
        HEADER,
        """
        class Seq2Seq(nn.Module):
            def __init__(self):
                super().__init__()
                self.decoder = nn.GRUCell(8, 8)

            @torch.no_grad()
            def generate(self, h, steps):
                step = self.decoder
                outputs = []
                for _ in range(steps):
                    h = step(h, h)
                    outputs.append(h)
                return outputs

        class GenerationMixin:
            @torch.no_grad()
            def sample(self, x, steps):
                forward = self.model.decoder if steps else self.__call__
                for _ in range(steps):
                    x = forward(x)
                return x

        class Summarizer(Pipeline):
            def run_inference(self, batches):
                with torch.no_grad():
                    for batch in batches:
                        self.model(batch)

            def __call__(self, batches):
                return self.run_inference(batches)
        """,
    )
    assert loud(report) == []


def test_a_trainer_class_that_forgets_eval_fires():
    source = """
    class Trainer:
        def __init__(self, model, train_loader):
            self.model = model
            self.train_loader = train_loader
            self.loss_fn = nn.CrossEntropyLoss()
            self.optimizer = torch.optim.AdamW(model.parameters())

        @torch.inference_mode()
        def evaluate(self, valid_loader):
    {switch}
            valid_loss = 0.0
            for features, labels in valid_loader:
                valid_loss += self.loss_fn(self.model(features), labels).item()
            return valid_loss

        def fit(self, valid_loader):
            for epoch in range(3):
                self.model.train()
                for features, labels in self.train_loader:
                    self.optimizer.zero_grad()
                    self.loss_fn(self.model(features), labels).backward()
                    self.optimizer.step()
                self.evaluate(valid_loader)
    """
    bad = lint_text(HEADER, source.format(switch="        pass"))
    assert positions(bad, "BS904") == [(17, 9)]
    good = lint_text(HEADER, source.format(switch="        self.model.train(mode=False)"))
    assert loud(good) == []


def test_valid_in_a_mask_name_is_not_an_evaluation_signal():
    source = """
    def decode(tokens):
        model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
        {name} = []
        for t in tokens:
            {name}.append(model(t))
        return {name}
    """
    assert loud(lint_text(HEADER, source.format(name="valid_tokens"))) == []
    assert positions(lint_text(HEADER, source.format(name="valid_preds")), "BS904") == [(9, 5)]


# -- BS903 missing-zero-grad: trainer methods, Accelerate, closures, Lightning -------------------
def test_a_trainer_method_without_zero_grad_fires():
    report = lint_text(
        HEADER,
        """
        from tqdm import tqdm

        class Trainer:
            def __init__(self, model, loader):
                self.model, self.loader = model, loader
                self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

            def train_epoch(self):
                self.model.train()
                for features, labels in tqdm(self.loader):
                    F.cross_entropy(self.model(features), labels).backward()
                    self.optimizer.step()
        """,
    )
    assert positions(report, "BS903") == [(17, 13)]


def test_accelerate_backward_without_zero_grad_fires_and_with_it_is_silent():
    source = """
    def run(model, accelerator, train_dataloader):
        optimizer = torch.optim.AdamW(model.parameters())
        model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
        model.train()
        for inputs, labels in train_dataloader:
            with accelerator.accumulate(model):
                accelerator.backward(F.cross_entropy(model(inputs), labels))
                optimizer.step()
    {reset}
    """
    bad = lint_text(HEADER, source.format(reset=""))
    assert positions(bad, "BS903") == [(13, 13)]
    good = lint_text(HEADER, source.format(reset="            optimizer.zero_grad()"))
    assert loud(good) == []


def test_deepspeed_engine_steps_are_not_optimizer_steps():
    report = lint_text(
        HEADER,
        """
        def train(model_engine, trainloader, criterion):
            for inputs, labels in trainloader:
                loss = criterion(model_engine(inputs), labels)
                model_engine.backward(loss)
                model_engine.step()
        """,
    )
    assert loud(report) == []


def test_a_closure_without_zero_grad_fires():
    source = """
    class CurveFitter:
        def __init__(self):
            self.net = nn.Linear(1, 1)
            self.optimizer = torch.optim.LBFGS(self.net.parameters())

        def fit(self, x, y):
            for _ in range(20):
                def closure():
    {reset}
                    loss = F.mse_loss(self.net(x), y)
                    loss.backward()
                    return loss
                self.optimizer.step(closure)
    """
    bad = lint_text(HEADER, source.format(reset=""))
    assert positions(bad, "BS903") == [(18, 13)]
    good = lint_text(HEADER, source.format(reset="                self.optimizer.zero_grad()"))
    assert loud(good) == []


LIGHTNING_MANUAL = """
import lightning.pytorch as pl

class GAN(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.net = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x, y = batch
{reset}
        loss = F.cross_entropy(self.net(x), y)
        self.manual_backward(loss)
        opt.step()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters())
"""


def test_lightning_manual_optimization_without_zero_grad_fires():
    report = lint_text(HEADER, LIGHTNING_MANUAL.format(reset=""))
    assert positions(report, "BS903") == [(20, 9)]
    [finding] = report.findings
    assert "training_step" in finding.message and ".manual_backward()" in finding.message


def test_lightning_manual_optimization_with_zero_grad_is_silent():
    for reset in ("        opt.zero_grad()", "        self.net.zero_grad(set_to_none=True)"):
        assert loud(lint_text(HEADER, LIGHTNING_MANUAL.format(reset=reset))) == []


# -- BS907 loss-accumulated-with-graph ----------------------------------------------------------
def test_loss_sum_of_tensors_fires_and_item_or_detach_is_silent():
    source = """
    def train_one_epoch(model, loader, optimizer):
        loss_sum = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            loss_sum += {value}
        return loss_sum
    """
    bad = lint_text(HEADER, source.format(value="loss"))
    assert positions(bad, "BS907") == [(13, 9)]
    for value in ("loss.item()", "loss.detach()", "float(loss)", "loss.item() * x.size(0)"):
        assert loud(lint_text(HEADER, source.format(value=value))) == [], value
