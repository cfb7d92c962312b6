from lab.errors import EXIT_USAGE, InputError


def test_input_error_names_file_line_and_column():
    err = InputError("unknown key 'mut'", "topologies/x.yaml", 7, 5)
    assert str(err) == "topologies/x.yaml:7:5: unknown key 'mut'"
    assert err.exit_code == EXIT_USAGE


def test_input_error_without_position_is_just_the_message():
    assert str(InputError("no such file")) == "no such file"
