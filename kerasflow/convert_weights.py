"""Convert a state dict of a backbone's ImageNet weights (.pth or .safetensors; torchvision's layout for
the ResNets) into Keras weights for kerasflow.

    python -m kerasflow.convert_weights resnet34-b627a593.pth resnet34.weights.h5 [--arch resnet34]

A .pth file (what torch.save writes) is read without PyTorch and without running its pickled code.

(``python tools/convert_weights.py`` is the same command.)

Writes OUT.weights.h5 and OUT.weights.h5.json (the backbone's arguments); load them with
``kerasflow.backbones.load_imagenet_weights(backbone, "OUT.weights.h5")``.
"""

from kerasflow.cli import command_parser, start_tensorflow_quietly, value_errors_as_user_errors
from kerasflow.errors import cli_entry, run_command


@cli_entry
def main(argv=None):
    parser = command_parser("convert_weights", __doc__)
    parser.add_argument("in_path", help="state dict in the layout of the backbone's family (torchvision's for "
                        "the ResNets), .pth or .safetensors")
    parser.add_argument("out_path", help="output Keras weights, must end in .weights.h5")
    parser.add_argument("--arch", help="check the file against this backbone preset, e.g. resnet34 "
                        "(default: infer the architecture, of the default preset's family, from the keys and shapes)")
    args = parser.parse_args(argv)
    start_tensorflow_quietly()
    from kerasflow.backbones.registry import DEFAULT_PRESET, converter, preset_names
    from kerasflow.backbones.weights import config_path

    convert_file = converter(args.arch if args.arch in preset_names() else DEFAULT_PRESET)
    with value_errors_as_user_errors({"arch": "--arch"}):
        backbone = convert_file(args.in_path, args.out_path, arch=args.arch)
    print(f"wrote {args.out_path} and {config_path(args.out_path)} "
          f"({backbone.count_params():,} values, {len(backbone.stages)} stages)")
    return 0


if __name__ == "__main__":
    run_command(main)
