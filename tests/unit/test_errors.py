from lab.errors import EXIT_USAGE, InputError


def test_input_error_names_file_line_and_column():
    err = InputError("unknown key 'mut'", "topologies/x.yaml", 7, 5)
    assert str(err) == "topologies/x.yaml:7:5: unknown key 'mut'"
    assert err.exit_code == EXIT_USAGE


def test_input_error_without_position_is_just_the_message():
    assert str(InputError("no such file")) == "no such file"


def test_input_error_without_a_file_names_the_key_path():
    err = InputError("expected an integer", path=("services", 1, "backends", 0, "weight"))
    assert str(err) == "services[1].backends[0].weight: expected an integer"
    assert str(InputError("nothing to translate", subject="translator")) == \
        "translator: nothing to translate"
    assert str(InputError("bad", path=("prefix",), subject="translator")) == \
        "translator prefix: bad"


def test_input_error_within_an_outer_mapping_keeps_its_kind_and_key_flag():
    class Special(InputError):
        pass

    inner = Special("unknown setting 'x'", path=("zone", "x"), at_key=True)
    outer = inner.within("dns64")
    assert type(outer) is Special and outer.at_key
    assert outer.path == ("dns64", "zone", "x") and outer.message == inner.message


def test_one_function_words_schema_errors_for_documents_and_for_objects():
    import jsonschema

    from lab.schema import OBJECT, input_error

    schema = {"type": "object", "additionalProperties": False,
              "properties": {"mtu": {"type": "integer", "minimum": 68, "maximum": 65535},
                             "name": {"type": "string"}}}
    errors = lambda data: jsonschema.Draft202012Validator(schema).iter_errors(data)  # noqa: E731
    doc = input_error(errors({"mut": 1}), ("links", 0))
    assert doc.path == ("links", 0, "mut") and doc.at_key
    assert doc.message == "unknown key 'mut' in links[0] (did you mean 'mtu'?)"
    obj = input_error(errors({"mut": 1}), ("links", 0), OBJECT)
    assert obj.path == ("links", 0) and not obj.at_key
    assert obj.message == "unknown field 'mut' (known: mtu, name)"
    assert input_error(errors({"mtu": "x"})).message == "mtu: expected integer, got 'x'"
    assert input_error(errors({"mtu": "x"}), wording=OBJECT).message == \
        "expected an integer, got 'x'"
    assert input_error(errors({"mtu": 9}), wording=OBJECT).message == \
        "9 is out of range (68..65535)"
    assert input_error(errors({"mtu": 1500})) is None


def test_a_document_places_a_key_path_at_its_line_and_column():
    from lab.yamlfile import parse

    doc = parse("datapath:\n  translator:\n    prefix: nope\n", "t.yaml")
    err = doc.place(InputError("bad prefix", path=("prefix",), subject="translator"),
                    ("datapath", "translator"))
    assert str(err) == "t.yaml:3:13: bad prefix"
