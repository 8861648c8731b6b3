# ruff: noqa
# (the file keeps the style of the course scripts it is modelled on)
# A course-style convnet on MNIST: dropout, log_softmax + nll_loss, Adadelta with StepLR, a
# validation split, augmentation on PIL images, worker processes, checkpoints. A PyTorch
# script; tests/test_porting_scripts.py runs it with only its imports rewritten.
import argparse
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, random_split
import torchvision
from torchvision import transforms


class ConvNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.1),
            nn.MaxPool2d(2),
        )
        self.dropout = nn.Dropout(0.3)
        self.fc1 = nn.Linear(32 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = self.dropout(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def make_loaders(args):
    normalize = transforms.Normalize((0.1307,), (0.3081,))
    train_tf = transforms.Compose([transforms.RandomRotation(8), transforms.ToTensor(),
                                   normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    full = torchvision.datasets.MNIST(args.data, train=True, download=True, transform=train_tf)
    test_set = torchvision.datasets.MNIST(args.data, train=False, download=True,
                                          transform=test_tf)
    if args.subset:
        full = torch.utils.data.Subset(full, range(args.subset))
        test_set = torch.utils.data.Subset(test_set, range(args.subset))
    n_val = len(full) // 10
    train_set, val_set = random_split(full, [len(full) - n_val, n_val],
                                      generator=torch.Generator().manual_seed(args.seed))
    loader_kw = dict(num_workers=args.workers, persistent_workers=args.workers > 0)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                              drop_last=True, **loader_kw)
    val_loader = DataLoader(val_set, batch_size=500)
    test_loader = DataLoader(test_set, batch_size=500)
    return train_loader, val_loader, test_loader


def evaluate(model, loader, device):
    model.eval()
    correct, total, loss = 0, 0, 0.0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            output = model(images)
            loss += F.nll_loss(output, labels, reduction='sum').item()
            _, predicted = torch.max(output.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return loss / total, correct / total


def main(argv=None):
    parser = argparse.ArgumentParser(description='MNIST convnet')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--lr', type=float, default=1.0)
    parser.add_argument('--gamma', type=float, default=0.7)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--subset', type=int, default=0)
    parser.add_argument('--data', default='./data')
    parser.add_argument('--out', default='convnet_best.pt')
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    train_loader, val_loader, test_loader = make_loaders(args)

    model = ConvNet().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    best = 0.0
    for epoch in range(args.epochs):
        model.train()
        start = time.time()
        for step, (images, labels) in enumerate(train_loader):
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = F.nll_loss(model(images), labels)
            loss.backward()
            optimizer.step()
        scheduler.step()
        val_loss, val_acc = evaluate(model, val_loader, device)
        print(f'epoch {epoch + 1}: loss {loss.item():.4f} val_loss {val_loss:.4f} '
              f'val_acc {val_acc:.4f} lr {scheduler.get_last_lr()[0]:.4f} '
              f'({time.time() - start:.1f} s)')
        if val_acc > best:
            best = val_acc
            torch.save({'model': model.state_dict(), 'epoch': epoch, 'val_acc': val_acc},
                       args.out)

    checkpoint = torch.load(args.out, map_location=device)
    model.load_state_dict(checkpoint['model'])
    test_loss, test_acc = evaluate(model, test_loader, device)
    print(f'best epoch {checkpoint["epoch"] + 1}: test_loss {test_loss:.4f} test_acc {test_acc:.4f}')
    return test_acc


if __name__ == '__main__':
    main()
