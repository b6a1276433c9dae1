"""Synthetic secret corpus, generated at test time (no real-looking key is committed).

For each of the 28 content rules: two true positives (lines that must be detected) and two false
positives (lines that must not be).  Shapes follow the public gitleaks / trufflehog rule tests;
values come from a seeded RNG.
"""

from __future__ import annotations

import base64
import random
import string

_RNG = random.Random(20261126)
ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


def hexs(n: int) -> str:
    return rand(n, "0123456789abcdef")


def pem(kind: str = "RSA") -> str:
    body = "\n".join(rand(64, ALNUM + "+/") for _ in range(6))
    return f"-----BEGIN {kind} PRIVATE KEY-----\n{body}\n-----END {kind} PRIVATE KEY-----\n"


def jwt() -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    payload = base64.urlsafe_b64encode(b'{"sub":"1234567890","name":"Jane","iat":1516239022}').decode().rstrip("=")
    return f"{head}.{payload}.{rand(43, ALNUM + '-_')}"


def hf_token() -> str:
    return "hf_" + rand(34)


def corpus() -> dict[str, tuple[list[str], list[str]]]:
    """rule id -> (true-positive texts, false-positive texts)."""
    return {
        "huggingface-access-token": (
            [f'HF_TOKEN="{hf_token()}"', f"login(token='{hf_token()}')"],
            ["hf_" + "x" * 34, f"rhf_{rand(34)}", "hf_token = os.environ['HF_TOKEN']", "token: YOUR_TOKEN_HERE"],
        ),
        "huggingface-org-token": (
            [f"api_org_{rand(34, string.ascii_letters)}", f"key = 'api_org_{rand(34, string.ascii_letters)}'"],
            ["api_org_" + "a" * 34, "api_org_short"],
        ),
        "openai-api-key": (
            [f"OPENAI_API_KEY=sk-proj-{rand(74, ALNUM + '_-')}T3BlbkFJ{rand(74, ALNUM + '_-')}",
             f"sk-{rand(20)}T3BlbkFJ{rand(20)}"],
            ["sk-proj-short", "risk-management-plan"],
        ),
        "anthropic-api-key": (
            [f"sk-ant-api03-{rand(93, ALNUM + '_-')}AA", f"x = 'sk-ant-admin01-{rand(93, ALNUM + '_-')}AA'"],
            ["sk-ant-api03-xxxx", "desk-ant-api"],
        ),
        "aws-access-key-id": (
            [f"AKIA{rand(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}", f"id: ASIA{rand(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}"],
            ["AKIAIOSFODNN7EXAMPLE", "AKIA_NOT_A_KEY"],
        ),
        "aws-secret-access-key": (
            [f"aws_secret_access_key = {rand(40, ALNUM + '/+')}", f'AWS_SECRET_KEY: "{rand(40, ALNUM + "/+")}"'],
            ["aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_region = us-east-1"],
        ),
        "aws-bedrock-api-key": (
            [f"ABSKQmVkcm9ja0FQSUtleS{rand(110, ALNUM + '+/')}", f"key='ABSK{rand(130, ALNUM + '+/')}='"],
            ["ABSK short", "ABSKIT"],
        ),
        "github-pat": (
            [f"ghp_{rand(36)}", f"GITHUB_TOKEN=ghp_{rand(36)}"],
            ["ghp_" + "x" * 36, "ghp_tooshort"],
        ),
        "github-fine-grained-pat": (
            [f"github_pat_{rand(82, ALNUM + '_')}", f"token: github_pat_{rand(82, ALNUM + '_')}"],
            ["github_pat_short", "my_github_pat_var = 1"],
        ),
        "github-app-token": (
            [f"gho_{rand(36)}", f"ghs_{rand(36)} and ghr_{rand(36)}"],
            ["gho_" + "0" * 36, "ghu_short"],
        ),
        "gitlab-pat": (
            [f"glpat-{rand(20, ALNUM + '_-')}", f"GITLAB_TOKEN=glpat-{rand(20)}"],
            ["glpat-" + "x" * 20, "glpat-short"],
        ),
        "slack-token": (
            [f"xoxb-{rand(12, string.digits)}-{rand(12, string.digits)}-{rand(24)}",
             f"xoxp-{rand(12, string.digits)}-{rand(12, string.digits)}-{rand(32)}"],
            ["xoxb-not-a-token", "xoxo-12345"],
        ),
        "slack-webhook-url": (
            [f"https://hooks.slack.com/services/T{rand(8).upper()}/B{rand(8).upper()}/{rand(24)}",
             f"url=https://hooks.slack.com/workflows/T{rand(10)}/A{rand(10)}/{rand(24)}"],
            ["https://hooks.slack.com/services/", "https://api.slack.com/docs"],
        ),
        "gcp-api-key": (
            [f"AIza{rand(35, ALNUM + '_-')}", f"key=AIza{rand(35, ALNUM + '_-')}"],
            ["AIza" + "x" * 35, "AIzaShort"],
        ),
        "gcp-service-account": (
            ['{"type": "service_account", "project_id": "p", "private_key_id": "' + hexs(40)
             + '", "private_key": "-----BEGIN PRIVATE KEY-----\\n' + rand(100) + '\\n-----END PRIVATE KEY-----\\n"}',
             '{\n  "type": "service_account",\n  "private_key": "' + rand(80) + '"\n}'],
            ['{"type": "service_account", "client_email": "a@b"}', '{"type": "authorized_user"}'],
        ),
        "azure-ad-client-secret": (
            [f'client_secret = "{rand(3)}8Q~{rand(34, ALNUM + "_~.-")}"', f"AZURE={rand(3)}7Q~{rand(31)}"],
            ["abc8Q~short", "Q~ alone"],
        ),
        "pypi-upload-token": (
            [f"pypi-AgEIcHlwaS5vcmc{rand(70, ALNUM + '_-')}", f"password = pypi-AgEIcHlwaS5vcmc{rand(90)}"],
            ["pypi-AgEIcHlwaS5vcmc", "pypi-upload"],
        ),
        "npm-access-token": (
            [f"npm_{rand(36)}", f"//registry.npmjs.org/:_authToken=npm_{rand(36)}"],
            ["npm_" + "x" * 36, "npm_install_script"],
        ),
        "private-key": (
            [pem("RSA"), pem("OPENSSH")],
            ["-----BEGIN RSA PRIVATE KEY-----\nshort\n-----END RSA PRIVATE KEY-----", "-----BEGIN PUBLIC KEY-----"],
        ),
        "putty-private-key": (
            ["PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none", "PuTTY-User-Key-File-3: ssh-ed25519"],
            ["PuTTY-User-Key-File", "putty user key file docs"],
        ),
        "jwt": (
            [jwt(), f"Authorization: Bearer {jwt()}"],
            ["eyJhbGciOi", "eyes.eyebrows.eyelids"],
        ),
        "wandb-api-key": (
            [f"WANDB_API_KEY={hexs(40)}", f"wandb.login(key='{hexs(40)}')"],
            ["wandb.init(project='demo')", "commit " + hexs(40)],
        ),
        "replicate-api-token": (
            [f"r8_{rand(37)}", f"REPLICATE_API_TOKEN=r8_{rand(37)}"],
            ["r8_" + "x" * 37, "r8_short"],
        ),
        "groq-api-key": (
            [f"gsk_{rand(52)}", f"GROQ_API_KEY='gsk_{rand(52)}'"],
            ["gsk_" + "x" * 52, "gsk_short"],
        ),
        "cohere-api-key": (
            [f"COHERE_API_KEY={rand(40)}", f'cohere_key: "{rand(40)}"'],
            ["cohere_model = command-r", "import cohere"],
        ),
        "kaggle-api-key": (
            ['{"username":"jane","key":"' + hexs(32) + '"}', '{\n  "username": "bob",\n  "key": "' + hexs(32) + '"\n}'],
            ['{"key": "value"}', '{"username":"jane","key":"' + "0" * 32 + '"}'],
        ),
        "stripe-secret-key": (
            [f"sk_live_{rand(24)}", f"STRIPE=rk_live_{rand(30)}"],
            ["sk_live_" + "x" * 24, "sk_lives"],
        ),
        "databricks-token": (
            [f"dapi{hexs(32)}", f"DATABRICKS_TOKEN=dapi{hexs(32)}-2"],
            ["dapi" + "0" * 32, "dapiunknown"],
        ),
        "url-credentials": (
            [f"postgres://admin:{rand(16)}@db.internal:5432/app", f"git clone https://user:{rand(20)}@github.com/o/r"],
            ["https://user:password@example.com", "postgres://user:${DB_PASSWORD}@db/app", "https://huggingface.co/org/model"],
        ),
        "generic-secret-assignment": (
            [f'db_password = "{rand(20)}"', f"SECRET_KEY: {rand(32)}"],
            ['"tokenizer_class": "PreTrainedTokenizerFast"', "secret = get_secret()", "api_key = YOUR_API_KEY_HERE",
             'pad_token_id: 0', "hf_token = ${HF_TOKEN}", "HF_TOKEN=<HF_TOKEN>",
             "secret_key = hashlib.sha3_256(data).hexdigest()", "token = tokens_v2[idx1]"],
        ),
    }
