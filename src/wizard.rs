//! The wizard: the only module that prompts on the terminal.
//!
//! It takes the answers already given (flags, answers file) as the defaults of its
//! questions, asks every question of the blueprint, shows a summary and asks for
//! confirmation, and returns plain [`PartialAnswers`] with every key filled — the same
//! value flags or a file would give. The values offered are those the blueprint renders;
//! planned ones are named in the prompt so nobody wonders where they went.

use std::path::{Path, PathBuf};

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Select};
use new_service::answers::{self, PartialAnswers, Service};
use new_service::blueprint::{Blueprint, Choice, ChoiceValue};
use new_service::error::{Error, Result};

/// Asks every question, pre-filled with `given`; `target_of` maps a name to its folder.
pub fn ask(
    given: PartialAnswers,
    blueprint: &Blueprint,
    target_of: &dyn Fn(&str) -> PathBuf,
) -> Result<PartialAnswers> {
    let theme = ColorfulTheme::default();
    let choices = &blueprint.manifest.choices;

    let mut name_prompt = Input::<String>::with_theme(&theme).with_prompt("System name");
    if let Some(name) = &given.name {
        name_prompt = name_prompt.default(name.clone());
    }
    let name = name_prompt
        .validate_with(|v: &String| answers::validate_name("name", v).map_err(|e| explain(&e)))
        .interact_text()
        .map_err(prompt_error)?;

    let description = match &given.description {
        Some(d) => d.clone(),
        None => blueprint.default_description(&name)?,
    };
    let description = Input::<String>::with_theme(&theme)
        .with_prompt("Description")
        .default(description)
        .interact_text()
        .map_err(prompt_error)?;
    let owner = Input::<String>::with_theme(&theme)
        .with_prompt("Owner (team or person, may be empty)")
        .default(given.owner.clone().unwrap_or_default())
        .allow_empty(true)
        .interact_text()
        .map_err(prompt_error)?;

    let services = ask_services(&theme, given.services.unwrap_or_default(), blueprint)?;
    let broker = ask_choice(
        &theme,
        "Messaging broker",
        &choices.broker,
        given.messaging.broker,
    )?;
    let scheme = ask_choice(&theme, "Authentication", &choices.auth, given.auth.scheme)?;
    let mtls = ask_switch(
        &theme,
        "Mutual TLS between services?",
        &choices.mtls,
        given.auth.mtls,
    )?;
    let gateway = ask_switch(
        &theme,
        "Generate the API gateway?",
        &choices.gateway,
        given.gateway.enabled,
    )?;
    let ci = ask_choice(&theme, "CI provider", &choices.ci, given.ci.provider)?;

    let answers = PartialAnswers {
        name: Some(name.clone()),
        description: Some(description),
        owner: Some(owner),
        services: Some(services),
        messaging: answers::PartialMessaging {
            broker: Some(broker),
        },
        auth: answers::PartialAuth {
            scheme: Some(scheme),
            mtls: Some(mtls),
        },
        gateway: answers::PartialGateway {
            enabled: Some(gateway),
        },
        ci: answers::PartialCi { provider: Some(ci) },
        generator: None,
    };
    let target = target_of(&name);
    eprintln!("\n{}", summary(&answers, &target));
    let go = Confirm::with_theme(&theme)
        .with_prompt(format!("Generate {name} in {}?", target.display()))
        .default(true)
        .interact()
        .map_err(prompt_error)?;
    if go {
        Ok(answers)
    } else {
        Err(Error::Cancelled)
    }
}

fn ask_services(
    theme: &ColorfulTheme,
    mut services: Vec<Service>,
    blueprint: &Blueprint,
) -> Result<Vec<Service>> {
    let protocol = &blueprint.manifest.choices.protocol;
    if !services.is_empty() {
        let listed: Vec<String> = services
            .iter()
            .map(|s| format!("{} ({})", s.name, s.protocol))
            .collect();
        eprintln!("Services: {}", listed.join(", "));
    }
    loop {
        let adding = !services.is_empty();
        if adding {
            let more = Confirm::with_theme(theme)
                .with_prompt("Add another service?")
                .default(false)
                .interact()
                .map_err(prompt_error)?;
            if !more {
                return Ok(services);
            }
        }
        let index = services.len();
        let mut prompt =
            Input::<String>::with_theme(theme).with_prompt(format!("Service {} name", index + 1));
        if !adding {
            prompt = prompt.default(blueprint.manifest.defaults.service_name.clone());
        }
        let before = services.clone();
        let name = prompt
            .validate_with(|v: &String| {
                answers::validate_service_name(index, v, &before, blueprint)
                    .map_err(|e| explain(&e))
            })
            .interact_text()
            .map_err(prompt_error)?;
        let protocol = ask_choice(theme, &format!("Protocol of {name}"), protocol, None)?;
        services.push(Service { name, protocol });
    }
}

/// A select over the values the blueprint renders; `given` is preselected when offered.
fn ask_choice(
    theme: &ColorfulTheme,
    prompt: &str,
    choice: &Choice,
    given: Option<String>,
) -> Result<String> {
    let values = choice.supported();
    let preselect = given
        .map(ChoiceValue::Text)
        .unwrap_or_else(|| choice.default.clone())
        .to_string();
    let items: Vec<String> = choice
        .values
        .iter()
        .map(|o| format!("{:<10} {}", o.value.to_string(), o.help))
        .collect();
    let index = Select::with_theme(theme)
        .with_prompt(with_planned(prompt, choice))
        .items(&items)
        .default(values.iter().position(|v| *v == preselect).unwrap_or(0))
        .interact()
        .map_err(prompt_error)?;
    Ok(values[index].clone())
}

/// A yes/no question when the blueprint renders both; otherwise the one value, stated.
fn ask_switch(
    theme: &ColorfulTheme,
    prompt: &str,
    choice: &Choice,
    given: Option<bool>,
) -> Result<bool> {
    let offered: Vec<bool> = choice
        .values
        .iter()
        .filter_map(|o| match o.value {
            ChoiceValue::Bool(b) => Some(b),
            ChoiceValue::Text(_) => None,
        })
        .collect();
    let default = given.unwrap_or(choice.default == ChoiceValue::Bool(true));
    match offered.as_slice() {
        [only] => {
            eprintln!(
                "{}: {} (the only value this blueprint renders)",
                with_planned(prompt, choice),
                yes_no(*only)
            );
            Ok(*only)
        }
        _ => Confirm::with_theme(theme)
            .with_prompt(prompt)
            .default(default)
            .interact()
            .map_err(prompt_error),
    }
}

fn with_planned(prompt: &str, choice: &Choice) -> String {
    if choice.planned.is_empty() {
        return prompt.to_owned();
    }
    let planned: Vec<String> = choice.planned.iter().map(ToString::to_string).collect();
    format!("{prompt} (planned: {})", planned.join(", "))
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn summary(a: &PartialAnswers, target: &Path) -> String {
    let services: Vec<String> = a
        .services
        .iter()
        .flatten()
        .map(|s| format!("{} ({})", s.name, s.protocol))
        .collect();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    format!(
        "Summary\n  name         {}\n  folder       {}\n  description  {}\n  owner        {}\n  services     {}\n  messaging    {}\n  auth         {}, mTLS {}\n  gateway      {}\n  ci           {}\n",
        text(&a.name),
        target.display(),
        text(&a.description),
        text(&a.owner),
        services.join(", "),
        text(&a.messaging.broker),
        text(&a.auth.scheme),
        yes_no(a.auth.mtls.unwrap_or(false)),
        yes_no(a.gateway.enabled.unwrap_or(false)),
        text(&a.ci.provider),
    )
}

/// One line for an inline validation message.
fn explain(error: &Error) -> String {
    match (error.rule(), error.suggestion()) {
        (Some(rule), Some(s)) => format!("{error}: {rule} ({s})"),
        (Some(rule), None) => format!("{error}: {rule}"),
        _ => error.to_string(),
    }
}

fn prompt_error(error: dialoguer::Error) -> Error {
    match error {
        dialoguer::Error::IO(e) if e.kind() == std::io::ErrorKind::Interrupted => Error::Cancelled,
        other => Error::Prompt(other.to_string()),
    }
}
